//! The Piper decoder (flow and HiFi-GAN) as one plan over a symbolic frame count `T`, built at load. tract
//! takes its fast element-wise kernels (in-place, fused chains) only where it can prove a tensor holds enough
//! elements, so the frame count is asserted to be at least 1: with that, the symbolic plan runs as fast as one
//! optimised for a sentence's exact length (to within the noise), and no sentence pays 15–30 ms for a plan of
//! its own. The prior noise (`Random`, from ONNX's `RandomNormalLike`) draws its shape from the run's frame count
//! and is seeded ([`seed_noise`], here and in the encoder), so a sentence always sounds the same.
//!
//! Its one-dimensional convolutions (HiFi-GAN's residual blocks, with their LeakyReLU and residual add, the flow's
//! WaveNet layers, the output layer) and HiFi-GAN's upsampling run as Jarvis's own ops ([`super::conv1d`],
//! [`super::deconv1d`]), put in once at load.

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx_opl::random::Random;

use super::{conv1d, deconv1d};

/// Prior channels (VITS's `inter_channels`).
pub const CHANNELS: usize = 192;

/// The seed of the prior noise (ONNX's `RandomNormalLike` carries none, so each run would draw its own). Seeded,
/// a sentence is spoken the same way every time: the same words the same voice, and a recording Whisper heard
/// right once it hears right again.
pub const NOISE_SEED: u64 = 0x4a61_7276_6973;

/// Seeds the prior noise of `model` (every `Random` op) with [`NOISE_SEED`]: each run starts its draw anew.
pub fn seed_noise(model: &mut TypedModel) {
    for node in model.nodes.iter_mut() {
        if let Some(random) = node.op_as_mut::<Random>() {
            random.seed = Some(NOISE_SEED);
        }
    }
}

/// The decoder's plan, for any number of frames.
pub struct Decoder {
    plan: Arc<TypedRunnableModel>,
}

impl Decoder {
    /// Parses, types, declutters and optimises the decoder at `path` over a symbolic frame count, its
    /// convolutions Jarvis's own when `own_kernels`.
    pub fn load(path: &Path, own_kernels: bool) -> TractResult<Decoder> {
        let parsed = tract_onnx::onnx().model_for_path(path)?;
        let frames = parsed.symbols.sym("T");
        // True of every sentence (`synthesize` never asks for fewer), and what lets tract prove its element-wise
        // kernels worth taking.
        parsed.symbols.add_assertion("T >= 1")?;
        let prior = f32::fact(&[1.to_dim(), CHANNELS.to_dim(), frames.to_dim()]);
        let model = parsed
            .with_input_fact(0, prior.clone().into())?
            .with_input_fact(1, prior.into())?
            .with_input_fact(
                2,
                f32::fact(&[1.to_dim(), 1.to_dim(), frames.to_dim()]).into(),
            )?
            .with_input_fact(3, f32::fact([3]).into())?
            .into_typed()?
            .into_decluttered()?;
        let mut model = with_own_kernels(model, own_kernels)?;
        seed_noise(&mut model);
        let plan = model.into_optimized()?.into_runnable()?;
        Ok(Decoder { plan })
    }

    /// Audio for `inputs` (prior means, prior log-deviations, mask, scales) over at least one frame.
    pub fn run(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.plan.run(inputs)
    }
}

/// The decluttered `model` with its convolutions Jarvis's own ([`deconv1d::rewrite`], [`conv1d::rewrite`]) when
/// `own_kernels`.
fn with_own_kernels(mut model: TypedModel, own_kernels: bool) -> TractResult<TypedModel> {
    if own_kernels {
        let upsampling = deconv1d::rewrite(&mut model)?;
        let taken = conv1d::rewrite(&mut model)?;
        tracing::debug!(
            "piper: {taken} decoder convolutions and {upsampling} transposed ones on Jarvis's own ops"
        );
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voice::tts::piper::DECODER_FILE;

    fn path() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/cache")
            .join(DECODER_FILE)
    }

    /// Prior frames for `frames` frames, with the noise off (noise scale 0): the decoder is then deterministic.
    fn still_inputs(frames: usize) -> TVec<TValue> {
        let m: Vec<f32> = (0..CHANNELS * frames)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let tensor =
            |shape: &[usize], data: &[f32]| Tensor::from_shape(shape, data).unwrap().into();
        tvec!(
            tensor(&[1, CHANNELS, frames], &m),
            tensor(&[1, CHANNELS, frames], &vec![-1f32; CHANNELS * frames]),
            tensor(&[1, 1, frames], &vec![1f32; frames]),
            tensor(&[3], &[0.0, 1.0, 0.0])
        )
    }

    fn speak(plan: &Arc<TypedRunnableModel>, frames: usize) -> Vec<f32> {
        samples(&plan.run(still_inputs(frames)).unwrap())
    }

    fn samples(out: &TVec<TValue>) -> Vec<f32> {
        out[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    /// The plan built the old way: the parsed graph given concrete shapes, decluttered, then optimised.
    fn plan_from_scratch(own_kernels: bool, frames: usize) -> Arc<TypedRunnableModel> {
        let prior = f32::fact([1, CHANNELS, frames]);
        tract_onnx::onnx()
            .model_for_path(path())
            .expect("the Piper decoder (scripts/fetch-models)")
            .with_input_fact(0, prior.clone().into())
            .and_then(|m| m.with_input_fact(1, prior.into()))
            .and_then(|m| m.with_input_fact(2, f32::fact([1, 1, frames]).into()))
            .and_then(|m| m.with_input_fact(3, f32::fact([3]).into()))
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .and_then(|m| with_own_kernels(m, own_kernels))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .unwrap()
    }

    #[test]
    fn jarvis_convolutions_speak_the_same_audio() {
        let frames = 60;
        let (plain, own) = (
            plan_from_scratch(false, frames),
            plan_from_scratch(true, frames),
        );
        let count = |plan: &Arc<TypedRunnableModel>, op: &str| {
            plan.model()
                .nodes()
                .iter()
                .filter(|n| n.op().name() == op)
                .count()
        };
        // Every one-dimensional convolution: HiFi-GAN's 18 residual ones (with 18 LeakyReLUs and 18 adds folded
        // in) and its output layer (with its LeakyReLU), the flow's 16 WaveNet layers, and HiFi-GAN's input layer.
        assert_eq!(count(&own, "Conv1d"), 36);
        // HiFi-GAN's three upsampling layers, each with the LeakyReLU before it.
        assert_eq!(count(&own, "Deconv1d"), 3);
        assert_eq!(count(&plain, "Conv1d") + count(&plain, "Deconv1d"), 0);
        let (plain, own) = (speak(&plain, frames), speak(&own, frames));
        assert_eq!(plain.len(), frames * 256);
        assert_eq!(plain.len(), own.len());
        let loudest = plain.iter().fold(0f32, |m, s| m.max(s.abs()));
        assert!(loudest > 0.01, "the decoder says something: {loudest}");
        let worst = plain
            .iter()
            .zip(&own)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * loudest.max(1.0),
            "largest difference {worst} (loudest sample {loudest})"
        );
    }

    #[test]
    fn the_symbolic_plan_speaks_as_a_plan_built_for_the_length() {
        let decoder =
            Decoder::load(&path(), true).expect("the Piper decoder (scripts/fetch-models)");
        // Three sentences' lengths (one shorter than most taps) from the one plan, each against a plan built from
        // the parsed graph for exactly that length.
        for frames in [1, 47, 60] {
            assert_eq!(
                samples(&decoder.run(still_inputs(frames)).unwrap()),
                speak(&plan_from_scratch(true, frames), frames),
                "{frames} frames"
            );
        }
        // The noise is drawn at the run's length.
        let mut inputs = still_inputs(30);
        inputs[3] = Tensor::from_shape(&[3], &[0.667f32, 1.0, 0.8])
            .unwrap()
            .into();
        let out = decoder.run(inputs.clone()).unwrap();
        assert_eq!(out[0].len(), 30 * 256);
        // The noise is seeded: the same run again, and from a decoder loaded anew, says exactly the same.
        assert_eq!(out[0], decoder.run(inputs.clone()).unwrap()[0]);
        let again = Decoder::load(&path(), true).unwrap();
        assert_eq!(out[0], again.run(inputs.clone()).unwrap()[0]);
        // And it is noise: with it off the audio differs.
        assert_ne!(out[0], decoder.run(still_inputs(30)).unwrap()[0]);
        // Inputs that disagree on the frame count are an error, not a crash.
        let mut wrong = still_inputs(30);
        wrong[2] = Tensor::from_shape(&[1, 1, 29], &[1f32; 29]).unwrap().into();
        assert!(decoder.run(wrong).is_err());
    }
}
