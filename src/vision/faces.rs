//! The face engine: YuNet finds faces and their five landmarks, each face is aligned to the 112×112 template
//! ([`crate::vision::align`]), and SFace turns the crop into a 128-d embedding; two embeddings are compared by
//! cosine. Both models run in tract as optimised plans with fixed input shapes, built once ([`FaceEngine::load`]).
//!
//! Detection letterboxes the photo into the detector's square input (the whole photo, aspect kept), decodes
//! YuNet's three strides as OpenCV's `FaceDetectorYN` does (score = √(cls·obj), boxes and landmarks relative to the
//! anchor cell), and keeps the best faces after non-maximum suppression.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

use crate::nn::memory;
use crate::vision::align;
use crate::vision::photo::Photo;

/// The file names the models are fetched under (models/cache/, see models/MODELS.toml).
pub const DETECTOR_FILE: &str = "face_detection_yunet_2023mar.onnx";
pub const EMBEDDER_FILE: &str = "face_recognition_sface_2021dec.onnx";

/// Length of an embedding.
pub const EMBEDDING_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum FaceError {
    #[error("cannot load the face model {path}: {message} (run scripts/fetch-models)")]
    Load { path: String, message: String },
    #[error("the face model failed: {0}")]
    Run(String),
    #[error("the face model gave an unexpected output: {0}")]
    Output(String),
}

/// A face found in a photo, in the photo's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// x, y, width, height.
    pub bbox: [f32; 4],
    /// Right eye, left eye (as seen), nose tip, right and left mouth corner.
    pub landmarks: [[f32; 2]; 5],
    /// 0..1.
    pub score: f32,
}

/// How the detector runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Side of the square input: 640 finds faces down to ~20 px in a 1080p frame; 320 is four times cheaper.
    pub input: usize,
    /// Faces scoring below are dropped (OpenCV's default 0.9).
    pub score_threshold: f32,
    /// Overlap above which the weaker of two boxes is dropped.
    pub nms_iou: f32,
    /// At most this many faces per photo.
    pub max_faces: usize,
    /// Jarvis's own ops where tract is slow: SFace's PRelu nodes as one pass each ([`crate::vision::prelu`]), both
    /// models' 3×3 depthwise convolutions and first convolution over RGB as [`crate::vision::depthwise`] (with
    /// the batch norm, ReLU or PRelu and max-pool that follow them folded in), YuNet's other max-pools as [`crate::vision::maxpool`] and 1×1 convolutions over
    /// planes of 28×28 and more as [`crate::vision::pointwise`]. Off only to compare with tract's own.
    pub own_kernels: bool,
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings {
            input: 640,
            score_threshold: 0.9,
            nms_iou: 0.3,
            max_faces: 50,
            own_kernels: true,
        }
    }
}

/// An optimised model, ready to run.
pub type Plan = Arc<TypedRunnableModel>;

/// Both models, loaded once; cheap to share (`Arc` plans).
pub struct FaceEngine {
    detector: Plan,
    /// Which output is which: (kind, stride) per output index, from the model's output names.
    outputs: Vec<(OutputKind, usize)>,
    embedder: Plan,
    settings: DetectorSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Cls,
    Obj,
    Bbox,
    Kps,
}

impl FaceEngine {
    /// Loads YuNet and SFace from `dir` (models/cache/) and optimises them for their fixed input shapes.
    pub fn load(dir: &Path, settings: DetectorSettings) -> Result<FaceEngine, FaceError> {
        let det_path = dir.join(DETECTOR_FILE);
        let load_err = |path: &Path| {
            let path = path.display().to_string();
            move |e: TractError| FaceError::Load {
                path: path.clone(),
                message: format!("{e:#}"),
            }
        };
        let side = settings.input;
        let model = tract_onnx::onnx()
            .with_ignore_value_info(true)
            .model_for_path(&det_path)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 3, side, side]).into()))
            .map_err(load_err(&det_path))?;
        let mut outputs = Vec::new();
        for outlet in model.output_outlets().map_err(load_err(&det_path))? {
            // The ONNX output's own name (`cls_8`…), not the node that computes it.
            let name = model
                .outlet_label(*outlet)
                .unwrap_or(&model.node(outlet.node).name)
                .to_string();
            outputs.push(parse_output_name(&name).ok_or_else(|| FaceError::Load {
                path: det_path.display().to_string(),
                message: format!("unknown detector output `{name}`"),
            })?);
        }
        let detector = model
            .into_typed()
            .and_then(|m| optimised(m, settings.own_kernels))
            .map_err(load_err(&det_path))?;
        let emb_path = dir.join(EMBEDDER_FILE);
        let embedder =
            embedder_plan(&emb_path, settings.own_kernels).map_err(load_err(&emb_path))?;
        memory::release_freed_memory();
        memory::keep_working_sets();
        Ok(FaceEngine {
            detector,
            outputs,
            embedder,
            settings,
        })
    }

    /// YuNet's optimised plan (to see which ops it runs).
    pub fn detector_plan(&self) -> &Plan {
        &self.detector
    }

    /// Every face in `photo`, best first.
    pub fn detect(&self, photo: &Photo) -> Result<Vec<Face>, FaceError> {
        memory::in_use();
        let side = self.settings.input;
        let (input, scale) = letterbox(photo, side);
        let out = self
            .detector
            .run(tvec!(input.into()))
            .map_err(|e| FaceError::Run(format!("{e:#}")))?;
        let mut found = Vec::new();
        for stride in [8usize, 16, 32] {
            let get = |kind: OutputKind| -> Result<Vec<f32>, FaceError> {
                let i = self
                    .outputs
                    .iter()
                    .position(|o| *o == (kind, stride))
                    .ok_or_else(|| FaceError::Output(format!("no {kind:?} at stride {stride}")))?;
                let view = out[i]
                    .to_plain_array_view::<f32>()
                    .map_err(|e| FaceError::Output(e.to_string()))?;
                Ok(view.iter().copied().collect())
            };
            let (cls, obj, bbox, kps) = (
                get(OutputKind::Cls)?,
                get(OutputKind::Obj)?,
                get(OutputKind::Bbox)?,
                get(OutputKind::Kps)?,
            );
            let cols = side / stride;
            let cells = cols * cols;
            if cls.len() < cells
                || obj.len() < cells
                || bbox.len() < cells * 4
                || kps.len() < cells * 10
            {
                return Err(FaceError::Output(format!("stride {stride}: short outputs")));
            }
            let s = stride as f32;
            for idx in 0..cells {
                let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
                if score < self.settings.score_threshold {
                    continue;
                }
                let (c, r) = ((idx % cols) as f32, (idx / cols) as f32);
                let b = &bbox[idx * 4..idx * 4 + 4];
                let (cx, cy) = ((c + b[0]) * s, (r + b[1]) * s);
                let (w, h) = (b[2].exp() * s, b[3].exp() * s);
                let k = &kps[idx * 10..idx * 10 + 10];
                let mut landmarks = [[0.0f32; 2]; 5];
                for (n, l) in landmarks.iter_mut().enumerate() {
                    *l = [(k[2 * n] + c) * s / scale, (k[2 * n + 1] + r) * s / scale];
                }
                found.push(Face {
                    bbox: [
                        (cx - w / 2.0) / scale,
                        (cy - h / 2.0) / scale,
                        w / scale,
                        h / scale,
                    ],
                    landmarks,
                    score,
                });
            }
        }
        Ok(suppress(
            found,
            self.settings.nms_iou,
            self.settings.max_faces,
        ))
    }

    /// The face's embedding (unit length), from its aligned crop. `None` for degenerate landmarks.
    pub fn embed(&self, photo: &Photo, face: &Face) -> Result<Option<Vec<f32>>, FaceError> {
        match align::crop(photo, &face.landmarks) {
            Some(crop) => self.embed_crop(&crop).map(Some),
            None => Ok(None),
        }
    }

    /// The embedding (unit length) of an aligned 112×112 RGB crop ([`align::crop`]).
    pub fn embed_crop(&self, crop: &[u8]) -> Result<Vec<f32>, FaceError> {
        memory::in_use();
        if crop.len() != align::SIDE * align::SIDE * 3 {
            return Err(FaceError::Run(format!(
                "a crop is {0}x{0} RGB, not {1} bytes",
                align::SIDE,
                crop.len()
            )));
        }
        let n = align::SIDE * align::SIDE;
        let mut data = vec![0f32; 3 * n];
        for (i, px) in crop.chunks_exact(3).enumerate() {
            for c in 0..3 {
                data[c * n + i] = f32::from(px[c]);
            }
        }
        let input = tract_ndarray::Array4::from_shape_vec((1, 3, align::SIDE, align::SIDE), data)
            .map_err(|e| FaceError::Run(e.to_string()))?;
        let out = self
            .embedder
            .run(tvec!(Tensor::from(input).into()))
            .map_err(|e| FaceError::Run(format!("{e:#}")))?;
        let v: Vec<f32> = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| FaceError::Output(e.to_string()))?
            .iter()
            .copied()
            .collect();
        if v.len() != EMBEDDING_LEN {
            return Err(FaceError::Output(format!(
                "{} values, not {EMBEDDING_LEN}",
                v.len()
            )));
        }
        Ok(normalise(v))
    }
}

/// SFace's plan for its fixed 112×112 input; with `own_kernels`, its PRelu nodes as [`crate::vision::prelu`]'s op
/// and its depthwise convolutions as [`crate::vision::depthwise`]'s.
pub fn embedder_plan(path: &Path, own_kernels: bool) -> TractResult<Plan> {
    let mut onnx = tract_onnx::onnx();
    if own_kernels {
        crate::vision::prelu::register(&mut onnx);
    }
    let model = onnx
        .model_for_path(path)?
        .with_input_fact(0, f32::fact([1, 3, align::SIDE, align::SIDE]).into())?
        .into_typed()?;
    optimised(model, own_kernels)
}

/// A typed face model decluttered, its depthwise convolutions (with the ReLU and max-pool after them), its other
/// 2×2 max-pools and its 1×1 convolutions over large planes (with their bias and ReLU) put in Jarvis's ops (with
/// `own_kernels`), optimised.
fn optimised(model: TypedModel, own_kernels: bool) -> TractResult<Plan> {
    let mut model = model.into_decluttered()?;
    if own_kernels {
        crate::vision::depthwise::rewrite(&mut model, true)?;
        crate::vision::maxpool::rewrite(&mut model)?;
        crate::vision::pointwise::rewrite(&mut model)?;
    }
    model.into_optimized()?.into_runnable()
}

/// Cosine similarity of two unit-length embeddings.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in &mut v {
            *x /= norm;
        }
    }
    v
}

/// `cls_8`, `obj_16`, `bbox_32`, `kps_8`… → (kind, stride).
fn parse_output_name(name: &str) -> Option<(OutputKind, usize)> {
    let (kind, stride) = name.rsplit_once('_')?;
    let kind = match kind {
        "cls" => OutputKind::Cls,
        "obj" => OutputKind::Obj,
        "bbox" => OutputKind::Bbox,
        "kps" => OutputKind::Kps,
        _ => return None,
    };
    Some((kind, stride.parse().ok()?))
}

/// The photo scaled (aspect kept) into the top-left of a `side`×`side` BGR 0–255 NCHW tensor, and the scale.
fn letterbox(photo: &Photo, side: usize) -> (Tensor, f32) {
    let scale = (side as f32 / photo.width as f32).min(side as f32 / photo.height as f32);
    let (w, h) = (
        ((photo.width as f32 * scale).round() as usize).clamp(1, side),
        ((photo.height as f32 * scale).round() as usize).clamp(1, side),
    );
    let plane = side * side;
    let mut data = vec![0f32; 3 * plane];
    // Nearest source pixel per column, worked out once (this loop ran a division per pixel: 8 % of a photo's time).
    let source = |i: usize, limit: u32| {
        (((i as f32 + 0.5) / scale - 0.5).max(0.0) as usize).min(limit as usize - 1)
    };
    let columns: Vec<usize> = (0..w).map(|x| source(x, photo.width) * 3).collect();
    let row_bytes = photo.width as usize * 3;
    let (blue, rest) = data.split_at_mut(plane);
    let (green, red) = rest.split_at_mut(plane);
    for y in 0..h {
        let sy = source(y, photo.height);
        let Some(row) = photo.rgb.get(sy * row_bytes..(sy + 1) * row_bytes) else {
            break;
        };
        let out = y * side..y * side + w;
        for (((b, g), r), &sx) in blue[out.clone()]
            .iter_mut()
            .zip(&mut green[out.clone()])
            .zip(&mut red[out])
            .zip(&columns)
        {
            *b = f32::from(row[sx + 2]);
            *g = f32::from(row[sx + 1]);
            *r = f32::from(row[sx]);
        }
    }
    let t = tract_ndarray::Array4::from_shape_vec((1, 3, side, side), data)
        .map(Tensor::from)
        .unwrap_or_else(|_| Tensor::zero::<f32>(&[1, 3, side, side]).unwrap_or_default());
    (t, scale)
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let (x1, y1) = (a[0].max(b[0]), a[1].max(b[1]));
    let (x2, y2) = (
        (a[0] + a[2]).min(b[0] + b[2]),
        (a[1] + a[3]).min(b[1] + b[3]),
    );
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Non-maximum suppression: best first, dropping boxes that overlap a kept one by more than `threshold`.
fn suppress(mut faces: Vec<Face>, threshold: f32, max: usize) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for f in faces {
        if kept.len() >= max {
            break;
        }
        if kept.iter().all(|k| iou(&k.bbox, &f.bbox) <= threshold) {
            kept.push(f);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_map_to_kind_and_stride() {
        assert_eq!(parse_output_name("cls_8"), Some((OutputKind::Cls, 8)));
        assert_eq!(parse_output_name("kps_32"), Some((OutputKind::Kps, 32)));
        assert_eq!(parse_output_name("bbox_x"), None);
        assert_eq!(parse_output_name("scores"), None);
    }

    #[test]
    fn overlapping_boxes_keep_the_best() {
        let face = |x: f32, score: f32| Face {
            bbox: [x, 0.0, 10.0, 10.0],
            landmarks: [[0.0; 2]; 5],
            score,
        };
        let kept = suppress(
            vec![face(0.0, 0.91), face(1.0, 0.99), face(50.0, 0.95)],
            0.3,
            10,
        );
        assert_eq!(
            kept.iter().map(|f| f.score).collect::<Vec<_>>(),
            vec![0.99, 0.95]
        );
        assert_eq!(
            suppress(vec![face(0.0, 0.9), face(50.0, 0.95)], 0.3, 1).len(),
            1
        );
    }
}
