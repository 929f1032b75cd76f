//! Face recognition: accuracy on the photos checked by eye (tests/data/faces.toml), speed side by side with OpenCV
//! (`benches/faces_opencv.py`: cv2.FaceDetectorYN + cv2.FaceRecognizerSF on the same model files, the same photos
//! and the same thread count), and memory (RSS added by loading both models; the gallery's bytes per person).
//! Needs `scripts/fetch-models --with-tests` and opencv-python-headless in the test-peer venv (`scripts/setup
//! --bench`). Run: `cargo bench --bench faces`. Results and method: docs/BENCHMARKS.md, thresholds: docs/FACES.md.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use jarvis::vision::align;
use jarvis::vision::faces::{cosine, DetectorSettings, FaceEngine};
use jarvis::vision::gallery::{template, Decision, GallerySettings, Index, Indexed};
use jarvis::vision::photo::{decode, Photo, PhotoLimits};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

struct Checked {
    people: Vec<Vec<String>>,
    sunglasses: Vec<String>,
    turned: Vec<String>,
}

fn checked() -> Checked {
    let text = std::fs::read_to_string(root().join("tests/data/faces.toml")).expect("faces.toml");
    let t: toml::Table = text.parse().expect("toml");
    let list = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Checked {
        people: t["people"]
            .as_array()
            .expect("people")
            .iter()
            .map(list)
            .collect(),
        sunglasses: list(&t["sunglasses"]),
        turned: list(&t["turned"]),
    }
}

fn main() {
    let models = root().join("models/cache");
    let photos_dir = models.join("test-faces");
    let checked = checked();

    // Memory: both models loaded and optimised.
    let before = rss_kib();
    let engine = FaceEngine::load(&models, DetectorSettings::default())
        .expect("models (scripts/fetch-models)");
    let after = rss_kib();
    println!(
        "## Memory\nRSS before loading {} MiB, after {} MiB: +{} MiB",
        before / 1024,
        after / 1024,
        (after - before) / 1024
    );

    // Every checked photo, decoded; the first face of each is its embedding.
    let names: Vec<String> = checked.people.iter().flatten().cloned().collect();
    let photos: Vec<(String, Photo)> = names
        .iter()
        .map(|n| {
            let bytes = std::fs::read(photos_dir.join(n)).expect("photo");
            (
                n.clone(),
                decode(&bytes, &PhotoLimits::default()).expect("decodes"),
            )
        })
        .collect();
    let embedding = |p: &Photo| -> Option<Vec<f32>> {
        let faces = engine.detect(p).ok()?;
        let face = faces.first()?;
        engine.embed(p, face).ok().flatten()
    };
    let embedded: std::collections::BTreeMap<String, Vec<f32>> = photos
        .iter()
        .filter_map(|(n, p)| embedding(p).map(|e| (n.clone(), e)))
        .collect();
    println!(
        "\n## Accuracy\n{} people, {} photos, {} with a face found",
        checked.people.len(),
        names.len(),
        embedded.len()
    );
    accuracy(&checked, &embedded);

    // Speed, Jarvis and OpenCV on the same photos.
    let list = std::env::temp_dir().join(format!("jarvis-faces-bench-{}.txt", std::process::id()));
    std::fs::write(
        &list,
        names
            .iter()
            .map(|n| photos_dir.join(n).display().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .expect("list");
    println!(
        "\n## Speed (wall-clock per photo or per face; {} photos)",
        photos.len()
    );
    println!(
        "| threads | stage | Jarvis (tract) | OpenCV {} | ratio |",
        opencv_version()
    );
    println!("| --- | --- | --- | --- | --- |");
    let mut references = Vec::new();
    for threads in [1usize, 2] {
        let j = jarvis_speed(&engine, &photos, &names, &photos_dir, threads);
        let cv = ["intra", "workers"]
            .iter()
            .filter_map(|s| opencv(&models, &list, threads, s))
            .min_by(|a, b| a.2.total_cmp(&b.2));
        let Some(cv) = cv else {
            println!("OpenCV did not run (pip install opencv-python-headless into the venv: scripts/setup --bench)");
            continue;
        };
        speed_rows(threads, j, cv);
        references.push((threads, cv));
    }
    // A box without AVX-512 (an Intel N100, most mini PCs): Jarvis's own kernels limited to AVX2, against the
    // same OpenCV figures (its wheel's kernels are AVX2 at most). tract's own kernels still choose for themselves.
    if jarvis::nn::simd::avx512() {
        jarvis::nn::simd::limit_to_avx2(true);
        println!("\nJarvis's own kernels limited to AVX2 (tract's unchanged), OpenCV as above:");
        println!("| threads | stage | Jarvis, AVX2 | OpenCV | ratio |");
        println!("| --- | --- | --- | --- | --- |");
        for (threads, cv) in references {
            speed_rows(
                threads,
                jarvis_speed(&engine, &photos, &names, &photos_dir, threads),
                cv,
            );
        }
        jarvis::nn::simd::limit_to_avx2(false);
    }
    let _ = std::fs::remove_file(&list);
    own_kernels_against_tracts(&engine, &models, &photos);

    // The gallery's size per person: a full set of samples with their crops.
    let crop_bytes: Vec<usize> = photos
        .iter()
        .take(12)
        .filter_map(|(_, p)| {
            let faces = engine.detect(p).ok()?;
            let c = align::crop(p, &faces.first()?.landmarks)?;
            Some(jarvis::vision::service::jpeg(&c, align::SIDE as u32).len())
        })
        .collect();
    let per_sample = 512 + crop_bytes.iter().sum::<usize>() / crop_bytes.len().max(1);
    println!(
        "\n## Gallery\nA sample is 512 B of embedding + a {} B crop on average; a person at the {} -sample maximum \
         ≈ {} KiB",
        per_sample - 512,
        GallerySettings::default().max_samples,
        per_sample * GallerySettings::default().max_samples / 1024
    );
}

/// One table row per stage: Jarvis's (detection, embedding, whole) against OpenCV's.
fn speed_rows(threads: usize, ours: (f64, f64, f64), theirs: (f64, f64, f64)) {
    for (stage, ours, theirs) in [
        ("detection (per photo)", ours.0, theirs.0),
        ("alignment + embedding (per face)", ours.1, theirs.1),
        ("photo → identity (per photo)", ours.2, theirs.2),
    ] {
        println!(
            "| {threads} | {stage} | {ours:.1} ms | {theirs:.1} ms | {:.2}× |",
            ours / theirs
        );
    }
}

/// Same/different pair scores, and identification with half of the people enrolled from their first photos.
fn accuracy(c: &Checked, e: &std::collections::BTreeMap<String, Vec<f32>>) {
    let s = GallerySettings::default();
    let people: Vec<Vec<&String>> = c
        .people
        .iter()
        .map(|g| g.iter().filter(|n| e.contains_key(*n)).collect())
        .collect();
    let (mut same, mut diff) = (Vec::new(), Vec::new());
    for (i, g) in people.iter().enumerate() {
        for a in 0..g.len() {
            for b in a + 1..g.len() {
                same.push(cosine(&e[g[a]], &e[g[b]]));
            }
        }
        for h in &people[i + 1..] {
            for a in g {
                for b in h {
                    diff.push(cosine(&e[*a], &e[*b]));
                }
            }
        }
    }
    let q = |v: &mut Vec<f32>, f: f32| {
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f32 * f) as usize]
    };
    println!(
        "Same person: {} pairs, min {:.2}, 5th percentile {:.2}, median {:.2}",
        same.len(),
        q(&mut same, 0.0),
        q(&mut same, 0.05),
        q(&mut same, 0.5)
    );
    println!(
        "Different people: {} pairs, median {:.2}, 99.9th percentile {:.2}, max {:.2}",
        diff.len(),
        q(&mut diff, 0.5),
        q(&mut diff, 0.999),
        q(&mut diff, 1.0)
    );
    println!(
        "| threshold | true accepts (same) | false accepts (different) |\n| --- | --- | --- |"
    );
    for t in [0.30, 0.35, s.match_threshold, 0.45, s.learn_threshold] {
        let tar = same.iter().filter(|v| **v >= t).count() as f32 / same.len() as f32;
        let far = diff.iter().filter(|v| **v >= t).count();
        println!(
            "| {t:.2} | {:.1} % | {far} of {} ({:.3} %) |",
            tar * 100.0,
            diff.len(),
            far as f32 * 100.0 / diff.len() as f32
        );
    }

    // A household: every other person enrolled from their first one or two photos; the rest are strangers.
    let mut household = Index::default();
    let mut held_out: Vec<(&String, i64)> = Vec::new();
    let mut strangers: Vec<&String> = Vec::new();
    for (i, g) in people.iter().enumerate() {
        if g.len() < 2 {
            continue;
        }
        if i % 2 == 1 {
            strangers.extend(g.iter().copied());
            continue;
        }
        let enrol = if g.len() >= 3 { 2 } else { 1 };
        let samples: Vec<Vec<f32>> = g[..enrol].iter().map(|n| e[*n].clone()).collect();
        household.people.push(Indexed {
            id: i as i64,
            name: format!("person {i}"),
            template: template(&samples),
            samples,
            negatives: Vec::new(),
        });
        held_out.extend(g[enrol..].iter().map(|n| (*n, i as i64)));
    }
    let hard = |n: &str| c.sunglasses.iter().any(|s| s == n) || c.turned.iter().any(|s| s == n);
    let (mut right, mut wrong, mut unknown, mut hard_right, mut hard_total) = (0, 0, 0, 0, 0);
    for (n, id) in &held_out {
        let d = household.decide(&e[*n], &s);
        let ok = matches!(d, Decision::Known { person, .. } if person == *id);
        if hard(n) {
            hard_total += 1;
            hard_right += usize::from(ok);
            continue;
        }
        match d {
            Decision::Known { person, .. } if person == *id => right += 1,
            Decision::Known { .. } => wrong += 1,
            Decision::Unknown { .. } => unknown += 1,
        }
    }
    let named = strangers
        .iter()
        .filter(|n| matches!(household.decide(&e[**n], &s), Decision::Known { .. }))
        .count();
    let plain = right + wrong + unknown;
    println!(
        "\nHousehold of {} enrolled from 1–2 photos each; {} held-out photos of them (plus {} with sunglasses or \
         turned away), {} photos of {} strangers.",
        household.people.len(),
        plain,
        hard_total,
        strangers.len(),
        people.iter().enumerate().filter(|(i, g)| i % 2 == 1 && g.len() >= 2).count()
    );
    println!(
        "Held out: {right} named correctly ({:.1} %), {wrong} named wrongly, {unknown} left unknown. Sunglasses / \
         turned: {hard_right} of {hard_total} named correctly. Strangers named as someone: {named} of {} \
         ({:.1} %).",
        right as f32 * 100.0 / plain.max(1) as f32,
        strangers.len(),
        named as f32 * 100.0 / strangers.len().max(1) as f32
    );
}

/// Jarvis: (detection ms per photo, alignment + embedding ms per face, photo → identity ms per photo), with
/// `threads` workers sharing the engine.
fn jarvis_speed(
    engine: &FaceEngine,
    photos: &[(String, Photo)],
    names: &[String],
    dir: &Path,
    threads: usize,
) -> (f64, f64, f64) {
    let run = |work: &(dyn Fn(usize) -> usize + Sync)| -> (f64, usize) {
        let next = AtomicUsize::new(0);
        let faces = AtomicUsize::new(0);
        let started = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= photos.len() {
                        break;
                    }
                    faces.fetch_add(work(i), Ordering::Relaxed);
                });
            }
        });
        (
            started.elapsed().as_secs_f64() * 1000.0,
            faces.load(Ordering::Relaxed),
        )
    };
    let detect = |i: usize| engine.detect(&photos[i].1).map(|f| f.len()).unwrap_or(0);
    run(&detect);
    let (detect_ms, _) = run(&detect);
    let found: Vec<Vec<jarvis::vision::faces::Face>> = photos
        .iter()
        .map(|(_, p)| engine.detect(p).unwrap_or_default())
        .collect();
    let embed = |i: usize| {
        for f in &found[i] {
            let _ = engine.embed(&photos[i].1, f);
        }
        found[i].len()
    };
    // Warmed up as detection is: the first pass pays for first touches of the plan's buffers.
    run(&embed);
    let (embed_ms, faces) = run(&embed);
    let index = Index::default();
    let whole = |i: usize| {
        let bytes = std::fs::read(dir.join(&names[i])).unwrap_or_default();
        let Ok(p) = decode(&bytes, &PhotoLimits::default()) else {
            return 0;
        };
        let faces = engine.detect(&p).unwrap_or_default();
        for f in &faces {
            if let Ok(Some(e)) = engine.embed(&p, f) {
                let _ = index.decide(&e, &GallerySettings::default());
            }
        }
        faces.len()
    };
    let (whole_ms, _) = run(&whole);
    let n = photos.len() as f64;
    (detect_ms / n, embed_ms / faces.max(1) as f64, whole_ms / n)
}

/// SFace alone on every face's aligned crop, one thread: Jarvis's own PRelu and depthwise ops against tract's
/// own, the two engines taking turns over five rounds so that the machine's drift falls on both.
fn own_kernels_against_tracts(engine: &FaceEngine, models: &Path, photos: &[(String, Photo)]) {
    let tracts = FaceEngine::load(
        models,
        DetectorSettings {
            own_kernels: false,
            ..DetectorSettings::default()
        },
    )
    .expect("SFace with tract's own ops");
    let crops: Vec<Vec<u8>> = photos
        .iter()
        .filter_map(|(_, p)| {
            let faces = engine.detect(p).ok()?;
            align::crop(p, &faces.first()?.landmarks)
        })
        .collect();
    let time = |e: &FaceEngine| {
        let started = Instant::now();
        for c in &crops {
            let _ = e.embed_crop(c);
        }
        started.elapsed().as_secs_f64() * 1000.0 / crops.len().max(1) as f64
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        ours.push(time(engine));
        theirs.push(time(&tracts));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (o, t) = (median(&mut ours), median(&mut theirs));
    println!(
        "\nSFace per face ({} crops, 1 thread, median of 5 interleaved rounds): Jarvis's ops {o:.1} ms, tract's own \
         {t:.1} ms: {:.2}×",
        crops.len(),
        o / t
    );
}

fn python() -> PathBuf {
    let cache = std::env::var_os("JARVIS_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/jarvis")
        });
    cache.join("venv/bin/python")
}

fn opencv_version() -> String {
    std::process::Command::new(python())
        .args(["-c", "import cv2; print(cv2.__version__)"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// OpenCV's (detection, embedding, whole) ms at `threads` with a strategy (`intra` or `workers`).
fn opencv(models: &Path, list: &Path, threads: usize, strategy: &str) -> Option<(f64, f64, f64)> {
    let out = std::process::Command::new(python())
        .arg(root().join("benches/faces_opencv.py"))
        .arg(models)
        .arg(list)
        .arg(threads.to_string())
        .arg(strategy)
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some((
        v["detect_ms"].as_f64()?,
        v["embed_ms"].as_f64()?,
        v["whole_ms"].as_f64()?,
    ))
}
