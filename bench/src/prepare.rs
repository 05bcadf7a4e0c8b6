//! Preparation of the large tokens for the find and open phases: a token filled with `n`
//! AES keys, built once per module and count and kept in the token cache.
//!
//! Nothing here goes into the table (only the one-time build time is recorded), and it
//! must not write anywhere but its staging directory and the cache.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cryptoki::object::Attribute;

use crate::keys::{aes_template, id_bytes};
use crate::token::{cache_dir, configure, copy_dir, start, stop, Loaded, Which};
use crate::{err, Cfg, Res};

fn fill_token(m: &Loaded, n: usize) -> Res<()> {
    let start = Instant::now();
    for i in 0..n {
        let mut t = aes_template(&format!("k{i}"));
        t.push(Attribute::Id(id_bytes(i)));
        let mut v = [0u8; 32];
        v[..8].copy_from_slice(&(i as u64).to_le_bytes());
        v[8] = 0xbe;
        t.push(Attribute::Value(v.to_vec()));
        m.s.create_object(&t).map_err(err("C_CreateObject"))?;
        if (i + 1) % 10_000 == 0 {
            eprintln!(
                "    {}: {} keys, {:.0} keys/s",
                m.which.tag(),
                i + 1,
                (i + 1) as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "    {}: {n} keys created in {:.1} s",
        m.which.tag(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Makes sure `token-cache/<module>-<n>` exists for both modules (building the missing ones
/// in parallel, one thread per module). Returns the build times (seconds) of those built.
pub(crate) fn prepare(cfg: &Cfg, n: usize) -> Res<Vec<(Which, f64)>> {
    let need: Vec<Which> = [Which::Kms, Which::Soft]
        .into_iter()
        .filter(|w| !cache_dir(cfg, *w, n).exists())
        .collect();
    if need.is_empty() {
        return Ok(vec![]);
    }
    eprintln!("== preparing tokens with {n} keys (cached for later runs)");
    // Built on tmpfs when there is one: SoftHSMv2 rewrites (ftruncate + write) an object's
    // file once per attribute, which costs ~100 ms per object on this ext4 disk, and kmshsm
    // commits (fsync) every C_CreateObject. The finished directories are copied to the cache
    // on disk; what is measured later always runs on a copy on disk.
    let stage = if Path::new("/dev/shm").is_dir() {
        PathBuf::from(format!("/dev/shm/kmshsm-bench-prep-{}", std::process::id()))
    } else {
        cfg.work().join("stage")
    };
    let _ = std::fs::remove_dir_all(&stage);
    let tmp = |w: Which| stage.join(format!("{}-{n}", w.tag()));
    let kdir = if need.contains(&Which::Kms) {
        tmp(Which::Kms)
    } else {
        stage.join("unused-k")
    };
    let sdir = if need.contains(&Which::Soft) {
        tmp(Which::Soft)
    } else {
        stage.join("unused-s")
    };
    configure(&stage.join("conf"), &kdir, &sdir)?;
    let mut mods = vec![];
    for w in &need {
        let path = if *w == Which::Kms {
            &cfg.kms_so
        } else {
            &cfg.soft_so
        };
        mods.push(start(*w, path, true)?);
    }
    let hs: Vec<_> = mods
        .into_iter()
        .map(|m| {
            std::thread::spawn(move || -> Res<(Which, f64)> {
                let st = Instant::now();
                fill_token(&m, n)?;
                let t = (m.which, st.elapsed().as_secs_f64());
                stop(m);
                Ok(t)
            })
        })
        .collect();
    let times = hs
        .into_iter()
        .map(|h| h.join().map_err(|_| "fill thread panicked".to_string())?)
        .collect::<Res<Vec<_>>>()?;
    for w in &need {
        let part = cfg.cache().join(format!("{}-{n}.part", w.tag()));
        copy_dir(&tmp(*w), &part)?;
        std::fs::rename(&part, cache_dir(cfg, *w, n)).map_err(err("rename"))?;
        std::fs::write(
            cfg.cache().join(format!("{}-{n}.build-seconds", w.tag())),
            // `times` has one entry per module of `need`: one fill thread each (above).
            format!(
                "{:.1}\n",
                times.iter().find(|t| t.0 == *w).expect("timed").1
            ),
        )
        .map_err(err("write"))?;
    }
    let _ = std::fs::remove_dir_all(&stage);
    Ok(times)
}
