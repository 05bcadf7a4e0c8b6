// Signs with a private key of a PKCS#11 token through the JDK's SunPKCS11 provider and
// verifies the signature with the public key of the entry's certificate, both inside the
// token (SunPKCS11) and in software (the default provider).
//
// Usage: java SignWithToken <SunPKCS11 config file> <user PIN> <alias> <signature algorithm>
// Prints "verified <alias> <algorithm> <signature length>" and exits 0 on success; any
// failure throws (exit status 1).
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;

public class SignWithToken {
    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            throw new IllegalArgumentException("usage: SignWithToken <config> <pin> <alias> <algorithm>");
        }
        String config = args[0];
        char[] pin = args[1].toCharArray();
        String alias = args[2];
        String algorithm = args[3];

        Provider provider = Security.getProvider("SunPKCS11").configure(config);
        Security.addProvider(provider);
        KeyStore store = KeyStore.getInstance("PKCS11", provider);
        store.load(null, pin);

        PrivateKey key = (PrivateKey) store.getKey(alias, null);
        if (key == null) {
            throw new IllegalStateException("no private key with alias " + alias);
        }
        Certificate cert = store.getCertificate(alias);
        if (cert == null) {
            throw new IllegalStateException("no certificate with alias " + alias);
        }

        byte[] message = ("signed by a kmshsm token key: " + alias).getBytes(StandardCharsets.UTF_8);
        Signature signer = Signature.getInstance(algorithm, provider);
        signer.initSign(key);
        signer.update(message);
        byte[] signature = signer.sign();

        // Verified in software, with no PKCS#11 involved.
        Signature verifier = Signature.getInstance(algorithm);
        verifier.initVerify(cert.getPublicKey());
        verifier.update(message);
        if (!verifier.verify(signature)) {
            throw new IllegalStateException("the token's signature does not verify in software");
        }
        // A tampered message must not verify.
        verifier.initVerify(cert.getPublicKey());
        verifier.update(message);
        verifier.update((byte) 0);
        if (verifier.verify(signature)) {
            throw new IllegalStateException("a tampered message verified");
        }
        System.out.println("verified " + alias + " " + algorithm + " " + signature.length);
    }
}
