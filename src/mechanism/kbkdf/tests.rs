//! Known answers and parameter rules of `kbkdf`.
//!
//! Counter-mode vectors: NIST CAVP "SP800-108 - KDF" (KDFCTR_gen.rsp, CAVS 14.4),
//! section [PRF=HMAC_SHA256] [CTRLOCATION=BEFORE_FIXED], with [RLEN=32_BITS] COUNT=0, 10,
//! 20, 30 and [RLEN=8_BITS] one case. The CAVP FixedInputData is one opaque string, so it
//! goes in as one byte array after the iteration variable.

use super::*;
use crate::object::key::Material;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn key(key_type: KeyType, v: &[u8]) -> Key {
    Key {
        class: CKO_SECRET_KEY,
        key_type,
        material: Material::Secret(Zeroizing::new(v.to_vec())),
        prepared: Default::default(),
    }
}

fn be(width_bits: u64) -> IntFormat {
    IntFormat {
        little_endian: false,
        width_bits,
    }
}

fn params(prf: MechType, data: Vec<PrfData>, extra: usize) -> Param {
    Param::Kbkdf(KbkdfParams {
        prf,
        data,
        iv: Vec::new(),
        additional_keys: extra,
    })
}

fn derive(m: &Kbkdf, p: &Param, base: &Key, lens: &[usize]) -> Result<Vec<Vec<u8>>> {
    let input = DeriveInput {
        other: None,
        lens: lens.iter().map(|n| Some(*n)).collect(),
        guarded: (false, false),
    };
    Ok(m.derive_keys(p, base, &input)?
        .into_iter()
        .map(|k| k.to_vec())
        .collect())
}

const COUNTER: Kbkdf = Kbkdf {
    kind: CKM_SP800_108_COUNTER_KDF,
    mode: Mode::Counter,
};
const FEEDBACK: Kbkdf = Kbkdf {
    kind: CKM_SP800_108_FEEDBACK_KDF,
    mode: Mode::Feedback,
};
const PIPELINE: Kbkdf = Kbkdf {
    kind: CKM_SP800_108_DOUBLE_PIPELINE_KDF,
    mode: Mode::Pipeline,
};

#[test]
fn nist_cavp_counter_mode_hmac_sha256() {
    // (RLEN, KI, FixedInputData, KO)
    let cases = [
        (
            32,
            "dd1d91b7d90b2bd3138533ce92b272fbf8a369316aefe242e659cc0ae238afe0",
            "01322b96b30acd197979444e468e1c5c6859bf1b1cf951b7e725303e237e46b864a145fab25e517b08f8683d0315bb2911d80a0e8aba17f3b413faac",
            "10621342bfb0fd40046c0e29f2cfdbf0",
        ),
        (
            32,
            "e204d6d466aad507ffaf6d6dab0a5b26152c9e21e764370464e360c8fbc765c6",
            "7b03b98d9f94b899e591f3ef264b71b193fba7043c7e953cde23bc5384bc1a6293580115fae3495fd845dadbd02bd6455cf48d0f62b33e62364a3a80",
            "770dfab6a6a4a4bee0257ff335213f78d8287b4fd537d5c1fffa956910e7c779",
        ),
        (
            32,
            "dc60338d884eecb72975c603c27b360605011756c697c4fc388f5176ef81efb1",
            "44d7aa08feba26093c14979c122c2437c3117b63b78841cd10a4bc5ed55c56586ad8986d55307dca1d198edcffbc516a8fbe6152aa428cdd800c062d",
            "29ac07dccf1f28d506cd623e6e3fc2fa255bd60b",
        ),
        (
            32,
            "c4bedbddb66493e7c7259a3bbbc25f8c7e0ca7fe284d92d431d9cd99a0d214ac",
            "1c69c54766791e315c2cc5c47ecd3ffab87d0d273dd920e70955814c220eacace6a5946542da3dfe24ff626b4897898cafb7db83bdff3c14fa46fd4b",
            "1da47638d6c9c4d04d74d4640bbd42ab814d9e8cc22f4326695239f96b0693f12d0dd1152cf44430",
        ),
        (
            8,
            "2ce3a4a13bbf845a38999ef3c2a68385355fbbb0d6997c0bea7c3fecdc7f6745",
            "8505879d9c93d0b66a29a4d334c257a7824538ebcf151c0b55de0b757dda28fd462c17cbdd8b529f9c183b786385499ff61fa1b736fb1579cf2f8e88",
            "ee9a34656d9d98384f49d35f088cd674",
        ),
    ];
    for (rlen, ki, fixed, ko) in cases {
        let p = params(
            CKM_SHA256_HMAC,
            vec![
                PrfData::Iteration(Some(be(rlen))),
                PrfData::Bytes(unhex(fixed)),
            ],
            0,
        );
        let ko = unhex(ko);
        let out = derive(
            &COUNTER,
            &p,
            &key(CKK_GENERIC_SECRET, &unhex(ki)),
            &[ko.len()],
        )
        .unwrap();
        assert_eq!(out, vec![ko]);
    }
}

/// HMAC-SHA-256 of `data` under `k`, for the hand-built expectations below.
fn mac(k: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, k);
    hmac::sign(&key, data).as_ref().to_vec()
}

#[test]
fn feedback_and_pipeline_follow_sp800_108_sections_5_2_and_5_3() {
    let ki = [0x0bu8; 32];
    let base = key(CKK_GENERIC_SECRET, &ki);
    let label = b"label".to_vec();
    let data = vec![
        PrfData::Iteration(None),
        PrfData::Counter(be(8)),
        PrfData::Bytes(label.clone()),
        PrfData::DkmLength {
            method: CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS as u64,
            format: be(16),
        },
    ];
    // Feedback: K(i) = PRF(K(i-1) || [i]_8 || label || [L]_16), K(0) = IV.
    let iv = vec![0xAAu8; 4];
    let p = Param::Kbkdf(KbkdfParams {
        prf: CKM_SHA256_HMAC,
        data: data.clone(),
        iv: iv.clone(),
        additional_keys: 0,
    });
    let l = [0x01, 0x80]; // 48 bytes = 384 bits
    let k1 = mac(&ki, &[&iv[..], &[1], &label, &l].concat());
    let k2 = mac(&ki, &[&k1[..], &[2], &label, &l].concat());
    let out = derive(&FEEDBACK, &p, &base, &[48]).unwrap();
    assert_eq!(out[0], [&k1[..], &k2[..16]].concat());
    // Double pipeline: A(0) = label || [L]; A(i) = PRF(A(i-1));
    // K(i) = PRF(A(i) || [i]_8 || label || [L]).
    let p = params(CKM_SHA256_HMAC, data, 0);
    let a0 = [&label[..], &l].concat();
    let a1 = mac(&ki, &a0);
    let a2 = mac(&ki, &a1);
    let k1 = mac(&ki, &[&a1[..], &[1], &label, &l].concat());
    let k2 = mac(&ki, &[&a2[..], &[2], &label, &l].concat());
    let out = derive(&PIPELINE, &p, &base, &[48]).unwrap();
    assert_eq!(out[0], [&k1[..], &k2[..16]].concat());
}

#[test]
fn additional_keys_start_on_fresh_segments_and_dkm_methods_differ() {
    // §2.42.7's example: a 48-byte and a 16-byte key with HMAC-SHA-256 take three
    // segments; L is 512 bits summing keys, 768 summing segments.
    let ki = [0x42u8; 32];
    let base = key(CKK_GENERIC_SECRET, &ki);
    for (method, l) in [
        (CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS, [0x02, 0x00]),
        (CK_SP800_108_DKM_LENGTH_SUM_OF_SEGMENTS, [0x03, 0x00]),
    ] {
        let p = params(
            CKM_SHA256_HMAC,
            vec![
                PrfData::Iteration(Some(be(16))),
                PrfData::DkmLength {
                    method: method as u64,
                    format: be(16),
                },
            ],
            1,
        );
        let seg = |i: u8| mac(&ki, &[&[0, i][..], &l].concat());
        let out = derive(&COUNTER, &p, &base, &[48, 16]).unwrap();
        assert_eq!(out[0], [&seg(1)[..], &seg(2)[..16]].concat());
        assert_eq!(out[1], seg(3)[..16]);
    }
}

#[test]
fn aes_cmac_prf_needs_an_aes_base_key() {
    let p = params(CKM_AES_CMAC, vec![PrfData::Iteration(Some(be(32)))], 0);
    let out = derive(&COUNTER, &p, &key(CKK_AES, &[1u8; 32]), &[32]).unwrap();
    let mut m = Cmac::new(&[1u8; 32]).unwrap();
    m.update(&[0, 0, 0, 1]).unwrap();
    let first = m.finalize().unwrap();
    assert_eq!(out[0][..16], first);
    assert!(matches!(
        derive(&COUNTER, &p, &key(CKK_GENERIC_SECRET, &[1u8; 32]), &[32]),
        Err(Error::KeyTypeInconsistent)
    ));
}

#[test]
fn data_lists_against_the_rules_of_each_mode() {
    let base = key(CKK_GENERIC_SECRET, &[5u8; 32]);
    let dkm = PrfData::DkmLength {
        method: CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS as u64,
        format: be(32),
    };
    let bytes = PrfData::Bytes(b"x".to_vec());
    let bad_counter: Vec<Vec<PrfData>> = vec![
        vec![bytes.clone(), dkm.clone()], // no iteration variable
        vec![PrfData::Iteration(None), bytes.clone()], // no counter format
        vec![PrfData::Iteration(Some(be(16))), PrfData::Counter(be(16))], // counter given
        vec![PrfData::Iteration(Some(be(16))), dkm.clone(), dkm.clone()], // two DKM lengths
        vec![PrfData::Iteration(Some(be(12)))], // width not whole bytes
        vec![PrfData::Iteration(Some(be(64)))], // counter too wide
        vec![
            PrfData::Iteration(Some(be(16))),
            PrfData::Iteration(Some(be(16))),
        ],
        vec![
            PrfData::Iteration(Some(be(16))),
            PrfData::DkmLength {
                method: 9,
                format: be(32),
            },
        ],
    ];
    for data in bad_counter {
        let p = params(CKM_SHA256_HMAC, data.clone(), 0);
        assert!(
            matches!(
                derive(&COUNTER, &p, &base, &[32]),
                Err(Error::MechanismParamInvalid)
            ),
            "{data:?}"
        );
    }
    let bad_feedback: Vec<Vec<PrfData>> = vec![
        vec![PrfData::Iteration(Some(be(16)))], // a counter format on the iteration variable
        vec![
            PrfData::Iteration(None),
            PrfData::Counter(be(8)),
            PrfData::Counter(be(8)),
        ],
        vec![bytes],
    ];
    for data in bad_feedback {
        let p = params(CKM_SHA256_HMAC, data.clone(), 0);
        for m in [&FEEDBACK, &PIPELINE] {
            assert!(
                matches!(
                    derive(m, &p, &base, &[32]),
                    Err(Error::MechanismParamInvalid)
                ),
                "{data:?}"
            );
        }
    }
    // An 8-bit counter cannot count 256 blocks.
    let p = params(CKM_SHA256_HMAC, vec![PrfData::Iteration(Some(be(8)))], 0);
    assert!(derive(&COUNTER, &p, &base, &[255 * 32]).is_ok());
    assert!(matches!(
        derive(&COUNTER, &p, &base, &[256 * 32]),
        Err(Error::MechanismParamInvalid)
    ));
    // A DKM length that does not fit its width.
    let p = params(
        CKM_SHA256_HMAC,
        vec![
            PrfData::Iteration(Some(be(16))),
            PrfData::DkmLength {
                method: CK_SP800_108_DKM_LENGTH_SUM_OF_KEYS as u64,
                format: be(8),
            },
        ],
        0,
    );
    assert!(matches!(
        derive(&COUNTER, &p, &base, &[32]),
        Err(Error::MechanismParamInvalid)
    ));
    // Unknown PRFs; a key count that disagrees with the templates.
    let p = params(CKM_SHA256, vec![PrfData::Iteration(Some(be(16)))], 0);
    assert!(matches!(
        derive(&COUNTER, &p, &base, &[32]),
        Err(Error::MechanismParamInvalid)
    ));
    let p = params(CKM_SHA256_HMAC, vec![PrfData::Iteration(Some(be(16)))], 1);
    assert!(matches!(
        derive(&COUNTER, &p, &base, &[32]),
        Err(Error::MechanismParamInvalid)
    ));
}

#[test]
fn little_endian_counters_and_lengths() {
    let f = IntFormat {
        little_endian: true,
        width_bits: 24,
    };
    assert_eq!(encode(0x010203, f).unwrap(), [3, 2, 1]);
    assert_eq!(encode(0x010203, be(24)).unwrap(), [1, 2, 3]);
    assert_eq!(encode(u64::MAX, be(64)).unwrap(), [0xFF; 8]);
    assert!(encode(256, be(8)).is_err());
}
