//! The Piper decoder (flow and HiFi-GAN) and its per-sentence plans. tract runs it 2–3× faster optimised for a
//! sentence's exact frame count than over a symbolic one, so each sentence gets its own plan. Building one from
//! the parsed ONNX graph took 160–190 ms, most of it in tract's clean-up passes (typing and decluttering), as long
//! as speaking a short sentence. So the decoder is parsed, typed and decluttered once at load over a symbolic frame
//! count `T`; per sentence `T` is substituted and the plan optimised from there (50–80 ms, the same audio bit for
//! bit: test below). The one op that keeps its own copy of a shape is the prior noise (`Random`, from ONNX's
//! `RandomNormalLike`): it is given the concrete shape and the graph's facts refreshed.
//!
//! Its one-dimensional convolutions (HiFi-GAN's residual blocks, with their LeakyReLU and residual add, the flow's
//! WaveNet layers, the output layer) and HiFi-GAN's upsampling run as Jarvis's own ops ([`super::conv1d`],
//! [`super::deconv1d`]), put in once at load.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx_opl::random::Random;

use super::{conv1d, deconv1d, TtsError};

/// Prior channels (VITS's `inter_channels`).
pub const CHANNELS: usize = 192;

/// The decoder, decluttered over the symbolic frame count `frames`.
pub struct Decoder {
    model: TypedModel,
    frames: Symbol,
}

impl Decoder {
    /// Parses, types and declutters the decoder at `path`, its convolutions Jarvis's own when `own_kernels`.
    pub fn load(path: &Path, own_kernels: bool) -> TractResult<Decoder> {
        let parsed = tract_onnx::onnx().model_for_path(path)?;
        let frames = parsed.symbols.sym("T");
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
        let model = with_own_kernels(model, own_kernels)?;
        Ok(Decoder { model, frames })
    }

    /// The decoder optimised for exactly `frames` frames.
    pub fn plan(&self, frames: usize) -> Result<Arc<TypedRunnableModel>, TtsError> {
        self.concrete(frames)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| TtsError::Run(format!("piper decoder for {frames} frames: {e:#}")))
    }

    fn concrete(&self, frames: usize) -> TractResult<TypedModel> {
        let count = (frames as i64).to_dim();
        let mut model = self
            .model
            .set_symbols(&HashMap::from([(self.frames.clone(), count.clone())]))?;
        for node in model.nodes.iter_mut() {
            if let Some(random) = node.op_as_mut::<Random>() {
                let shape: TVec<TDim> = random
                    .fact
                    .shape
                    .iter()
                    .map(|d| d.substitute(&self.frames, &count))
                    .collect::<TractResult<_>>()?;
                random.fact = random.fact.datum_type.fact(&*shape);
            }
        }
        model.refresh_output_facts()?;
        if let Some(node) = model.nodes.iter().find(|n| {
            n.outputs
                .iter()
                .any(|o| o.fact.shape.as_concrete().is_none())
        }) {
            return Err(TractError::msg(format!(
                "{} still has a symbolic shape",
                node.name
            )));
        }
        Ok(model)
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
        let out = plan.run(still_inputs(frames)).unwrap();
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
    fn a_plan_from_the_decluttered_decoder_is_the_plan_from_scratch() {
        let decoder =
            Decoder::load(&path(), true).expect("the Piper decoder (scripts/fetch-models)");
        // Two sentences' lengths from the one decluttered decoder, each against a plan built from the parsed graph.
        for frames in [47, 60] {
            let plan = decoder.plan(frames).unwrap();
            assert_eq!(
                speak(&plan, frames),
                speak(&plan_from_scratch(true, frames), frames)
            );
        }
        // The noise is drawn at the sentence's length (it is the one op with a shape of its own).
        let noisy = decoder.plan(30).unwrap();
        let mut inputs = still_inputs(30);
        inputs[3] = Tensor::from_shape(&[3], &[0.667f32, 1.0, 0.8])
            .unwrap()
            .into();
        let out = noisy.run(inputs).unwrap();
        assert_eq!(out[0].len(), 30 * 256);
    }
}
