//! Phase `find`: C_FindObjects by CKA_LABEL and by CKA_ID on tokens with many keys.
//!
//! It must not modify the cached tokens: it works on copies under the work directory.

use cryptoki::object::Attribute;

use crate::keys::id_bytes;
use crate::timing::{boxed, line, rate, Row};
use crate::token::{cache_dir, configure, copy_dir, start, stop, Which};
use crate::{err, Cfg, Res};

/// Deterministic pseudo-random key index sequence.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

pub(crate) fn find_phase(cfg: &Cfg, n: usize, rows: &mut Vec<Row>) -> Res<()> {
    eprintln!("== C_FindObjects on tokens with {n} keys");
    let dir = cfg.work().join(format!("find-{n}"));
    let kdir = dir.join("kmshsm-tokens");
    let sdir = dir.join("softhsm-tokens");
    copy_dir(&cache_dir(cfg, Which::Kms, n), &kdir)?;
    copy_dir(&cache_dir(cfg, Which::Soft, n), &sdir)?;
    configure(&dir, &kdir, &sdir)?;
    let k = start(Which::Kms, &cfg.kms_so, false)?;
    let s = start(Which::Soft, &cfg.soft_so, false)?;
    for by_id in [false, true] {
        let name = if by_id {
            format!("C_FindObjects by CKA_ID, {n} keys")
        } else {
            format!("C_FindObjects by CKA_LABEL, {n} keys")
        };
        let both = [&k, &s];
        let mk = |i: usize| {
            let m = both[i];
            let mut lcg = Lcg(12345);
            boxed(move |b| {
                // At least one call per sample: SoftHSMv2 needs seconds per call at 10,000+ keys.
                rate(b, 1, || {
                    let j = lcg.next(n);
                    let t = if by_id {
                        [Attribute::Id(id_bytes(j))]
                    } else {
                        [Attribute::Label(format!("k{j}").into_bytes())]
                    };
                    let found = m.s.find_objects(&t).map_err(err("C_FindObjects"))?;
                    if found.len() != 1 {
                        return Err(format!("found {} objects for key {j}", found.len()));
                    }
                    Ok(())
                })
            })
        };
        rows.push(line(cfg, &name, 1, Some(mk(0)), Some(mk(1)), None));
    }
    stop(k);
    stop(s);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
