//! Ears and voice: the audio the room hears and what Jarvis says back. This module owns the voice models (wake
//! word, voice activity, speech to text, text to speech), the audio sources and sinks (ALSA, WAV), and the
//! pipeline that joins them to the agent; it talks to the rest of Jarvis through the bus (`voice` channel), the
//! agent's `Asker`, and the store (latency traces).
//!
//! - [`wav`]: WAV files in and out, converted to 16 kHz mono.
//! - [`wake`]: "hey jarvis" (openWakeWord's three models, streaming in 80 ms steps) and the gate that decides a
//!   wake; [`wake_net`] runs its embedding network as a stream.
//! - [`vad`]: Silero voice activity, and the rule that cuts an utterance out of the stream.
//! - [`opus`]: a spoken reply as Ogg Opus, for the phone.
//! - [`cloud`]: the optional cloud transcription and voices (used only when configured, always with a fallback).

pub mod audio;
pub mod cloud;
pub mod listener;
pub mod live;
pub mod opus;
pub mod service;
pub mod stt;
pub mod trace;
pub mod tts;
pub mod vad;
pub mod wake;
pub mod wake_net;
pub mod wav;

use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::*;

/// An optimised tract plan with fixed input shapes, shared between threads.
pub(crate) type Plan = Arc<TypedRunnableModel>;

#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error("cannot load the voice model {path}: {message} (run scripts/fetch-models)")]
    Load { path: String, message: String },
    #[error("a voice model failed: {0}")]
    Run(String),
    #[error(transparent)]
    Wav(#[from] wav::WavError),
}

/// Loads an ONNX model with fixed f32 input shapes (in input order) and optimises it.
pub(crate) fn load_plan(path: &Path, inputs: &[&[usize]]) -> Result<Plan, VoiceError> {
    let typed: Vec<(DatumType, &[usize])> =
        inputs.iter().map(|s| (f32::datum_type(), *s)).collect();
    load_typed_plan(path, &typed)
}

/// Loads an ONNX model with fixed input types and shapes (in input order) and optimises it.
pub(crate) fn load_typed_plan(
    path: &Path,
    inputs: &[(DatumType, &[usize])],
) -> Result<Plan, VoiceError> {
    let err = |e: TractError| VoiceError::Load {
        path: path.display().to_string(),
        message: format!("{e:#}"),
    };
    let onnx = tract_onnx::onnx().with_ignore_value_info(true);
    let mut proto = onnx.proto_model_for_path(path).map_err(err)?;
    name_nodes(&mut proto);
    let mut model = onnx.model_for_proto_model(&proto).map_err(err)?;
    for (i, (datum, shape)) in inputs.iter().enumerate() {
        model = model
            .with_input_fact(i, InferenceFact::dt_shape(*datum, shape.to_vec()))
            .map_err(err)?;
    }
    model
        .into_optimized()
        .and_then(|m| m.into_runnable())
        .map_err(err)
}

/// Gives every node a unique name: some exports (Silero's OpenVINO file) leave names empty or repeat them, which
/// tract refuses once it compacts the graph.
fn name_nodes(proto: &mut tract_onnx::pb::ModelProto) {
    let Some(graph) = proto.graph.as_mut() else {
        return;
    };
    let mut seen = std::collections::HashSet::new();
    for (i, node) in graph.node.iter_mut().enumerate() {
        if node.name.is_empty() || !seen.insert(node.name.clone()) {
            node.name = format!("{}_{i}_renamed", node.op_type);
            seen.insert(node.name.clone());
        }
    }
}
