//! openWakeWord's embedding network run as a stream: every 80 ms step computes only the columns the new mel
//! frames add, instead of the whole 76-frame window again.
//!
//! The network is a chain of convolutions that are "valid" along time (no time padding), each followed by a
//! LeakyReLU clamped from below, and max-pools whose time strides multiply to 8 — exactly the 8 mel frames a step
//! adds. So the window one step later is the previous one shifted by a whole number of columns at every layer,
//! and each layer keeps the few input columns its kernel still needs (`kernel - 1` of them) and computes only its
//! new output columns: about an eighth of the arithmetic, the same numbers. The layers are read from the ONNX file
//! itself (weights and attributes); anything that would break the streaming (time padding, strides, other ops)
//! is refused when the model loads, not guessed at. Convolutions are an im2col into one matrix product each
//! (ndarray's `general_mat_mul`, matrixmultiply's SIMD kernels), channels last.

use std::collections::HashMap;
use std::path::Path;

use tract_onnx::pb::{NodeProto, TensorProto};
use tract_onnx::prelude::Framework;
use tract_onnx::tract_core::ndarray::{
    linalg::general_mat_mul, ArrayView2, ArrayViewMut2, ShapeError,
};

use super::VoiceError;

/// One layer of the chain.
#[derive(Debug)]
enum Layer {
    Conv(Conv),
    Pool { time: usize, freq: usize },
}

/// A convolution (stride 1, no time padding), its bias and the activation fused after it.
#[derive(Debug)]
struct Conv {
    /// Kernel along time and frequency.
    kt: usize,
    kf: usize,
    inputs: usize,
    outputs: usize,
    /// Zero columns added below and above along frequency.
    pad_low: usize,
    pad_high: usize,
    /// `[kt][kf][inputs]` rows by `outputs` columns: the im2col row order.
    weights: Vec<f32>,
    bias: Vec<f32>,
    /// LeakyReLU's slope below zero and the floor after it (openWakeWord clamps at -0.4), if there is one.
    activation: Option<(f32, f32)>,
}

/// The shape of one column (one time step) entering a layer: frequency bins by channels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Column {
    freq: usize,
    channels: usize,
}

impl Column {
    fn len(self) -> usize {
        self.freq * self.channels
    }
}

/// The network, read once and shared by every listener.
#[derive(Debug)]
pub struct EmbeddingNet {
    layers: Vec<Layer>,
    /// The column entering each layer, and (last) the one leaving the network.
    columns: Vec<Column>,
    /// Frames of the whole window (76) and frequency bins per frame (32).
    window: usize,
    bins: usize,
}

/// One listener's place in the stream: each layer's held input columns.
#[derive(Debug, Clone)]
pub struct NetState {
    held: Vec<Vec<f32>>,
}

impl EmbeddingNet {
    /// Reads the chain from openWakeWord's `embedding_model.onnx`, whose input is `[1, window, bins, 1]`.
    pub fn load(path: &Path, window: usize, bins: usize) -> Result<EmbeddingNet, VoiceError> {
        let refuse = |message: String| VoiceError::Load {
            path: path.display().to_string(),
            message,
        };
        let proto = tract_onnx::onnx()
            .proto_model_for_path(path)
            .map_err(|e| refuse(format!("{e:#}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| refuse("no graph".into()))?;
        let tensors: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let layers = read_layers(&graph.node, &tensors).map_err(refuse)?;
        let net = EmbeddingNet::from_layers(layers, window, bins).map_err(refuse)?;
        Ok(net)
    }

    fn from_layers(layers: Vec<Layer>, window: usize, bins: usize) -> Result<EmbeddingNet, String> {
        // Walk the shapes once: the full window must end in exactly one column, and the step's frames in one
        // more.
        let mut column = Column {
            freq: bins,
            channels: 1,
        };
        let mut columns = vec![column];
        let mut frames = window;
        for layer in &layers {
            match layer {
                Layer::Conv(c) => {
                    if c.inputs != column.channels {
                        return Err(format!(
                            "a convolution takes {} channels but gets {}",
                            c.inputs, column.channels
                        ));
                    }
                    let padded = column.freq + c.pad_low + c.pad_high;
                    if padded < c.kf || frames < c.kt {
                        return Err("a convolution kernel larger than its input".into());
                    }
                    column = Column {
                        freq: padded - c.kf + 1,
                        channels: c.outputs,
                    };
                    frames -= c.kt - 1;
                }
                Layer::Pool { time, freq } => {
                    if !frames.is_multiple_of(*time) {
                        return Err(format!(
                            "a max-pool over {time} frames meets {frames}, which it does not divide"
                        ));
                    }
                    column = Column {
                        freq: column.freq / freq,
                        channels: column.channels,
                    };
                    frames /= time;
                }
            }
            columns.push(column);
        }
        if frames != 1 {
            return Err(format!("the window ends in {frames} columns, not one"));
        }
        Ok(EmbeddingNet {
            layers,
            columns,
            window,
            bins,
        })
    }

    /// How many frames one step must bring so that exactly one new embedding comes out: the product of the
    /// pools' time strides.
    pub fn step_frames(&self) -> usize {
        self.layers
            .iter()
            .map(|l| match l {
                Layer::Pool { time, .. } => *time,
                Layer::Conv(_) => 1,
            })
            .product()
    }

    /// The length of the embedding.
    pub fn embedding_len(&self) -> usize {
        self.columns.last().map_or(0, |c| c.len())
    }

    /// Runs a whole window (`window × bins` values, frame by frame) and returns its embedding and the state a
    /// stream continues from.
    pub fn start(&self, window: &[f32]) -> Result<(Vec<f32>, NetState), VoiceError> {
        if window.len() != self.window * self.bins {
            return Err(VoiceError::Run(format!(
                "the wake embedding wants {} values, not {}",
                self.window * self.bins,
                window.len()
            )));
        }
        let mut state = NetState {
            held: vec![Vec::new(); self.layers.len()],
        };
        let embedding = self.advance(&mut state, window)?;
        Ok((embedding, state))
    }

    /// Feeds the next `step_frames()` frames and returns the new embedding.
    pub fn step(&self, state: &mut NetState, frames: &[f32]) -> Result<Vec<f32>, VoiceError> {
        if frames.len() != self.step_frames() * self.bins || state.held.len() != self.layers.len() {
            return Err(VoiceError::Run(format!(
                "a wake embedding step wants {} values, not {}",
                self.step_frames() * self.bins,
                frames.len()
            )));
        }
        self.advance(state, frames)
    }

    fn advance(&self, state: &mut NetState, frames: &[f32]) -> Result<Vec<f32>, VoiceError> {
        let mut incoming = frames.to_vec();
        for (i, layer) in self.layers.iter().enumerate() {
            let column = self.columns[i];
            let held = &mut state.held[i];
            held.extend_from_slice(&incoming);
            let available = held.len() / column.len();
            let (out, keep) = match layer {
                Layer::Conv(c) => {
                    let n = (available + 1).saturating_sub(c.kt);
                    (conv(c, column, self.columns[i + 1], held, n)?, c.kt - 1)
                }
                Layer::Pool { time, freq } => {
                    let n = available / time;
                    let out = pool(*time, *freq, column, held, n);
                    (out, available - n * time)
                }
            };
            let drop = available.saturating_sub(keep) * column.len();
            held.drain(..drop);
            incoming = out;
        }
        let last = self.embedding_len();
        if incoming.len() != last {
            return Err(VoiceError::Run(format!(
                "the wake embedding stream gave {} values, not {last}",
                incoming.len()
            )));
        }
        Ok(incoming)
    }
}

/// The `n` output columns a convolution can compute from the held input columns, channels last.
fn conv(
    c: &Conv,
    input: Column,
    output: Column,
    held: &[f32],
    n: usize,
) -> Result<Vec<f32>, VoiceError> {
    let rows = n * output.freq;
    let depth = c.kt * c.kf * c.inputs;
    let mut patches = vec![0.0f32; rows * depth];
    for t in 0..n {
        for fo in 0..output.freq {
            let row = &mut patches[(t * output.freq + fo) * depth..][..depth];
            for dt in 0..c.kt {
                for df in 0..c.kf {
                    let Some(fi) = (fo + df).checked_sub(c.pad_low) else {
                        continue;
                    };
                    if fi >= input.freq {
                        continue;
                    }
                    let src = ((t + dt) * input.freq + fi) * input.channels;
                    let dst = (dt * c.kf + df) * c.inputs;
                    row[dst..dst + c.inputs].copy_from_slice(&held[src..src + input.channels]);
                }
            }
        }
    }
    let mut out: Vec<f32> = c
        .bias
        .iter()
        .copied()
        .cycle()
        .take(rows * c.outputs)
        .collect();
    if rows > 0 {
        let shape = |e: ShapeError| VoiceError::Run(format!("wake embedding convolution: {e}"));
        let a = ArrayView2::from_shape((rows, depth), &patches).map_err(shape)?;
        let b = ArrayView2::from_shape((depth, c.outputs), &c.weights).map_err(shape)?;
        let mut y = ArrayViewMut2::from_shape((rows, c.outputs), &mut out).map_err(shape)?;
        general_mat_mul(1.0, &a, &b, 1.0, &mut y);
    }
    if let Some((slope, floor)) = c.activation {
        for v in &mut out {
            let leaky = if *v < 0.0 { *v * slope } else { *v };
            *v = leaky.max(floor);
        }
    }
    Ok(out)
}

/// Max-pools `n` output columns (kernel = stride, no padding), channels last.
fn pool(time: usize, freq: usize, input: Column, held: &[f32], n: usize) -> Vec<f32> {
    let out_freq = input.freq / freq;
    let ch = input.channels;
    let mut out = vec![f32::NEG_INFINITY; n * out_freq * ch];
    for t in 0..n {
        for fo in 0..out_freq {
            let dst = &mut out[(t * out_freq + fo) * ch..][..ch];
            for dt in 0..time {
                for df in 0..freq {
                    let src = ((t * time + dt) * input.freq + fo * freq + df) * ch;
                    for (d, s) in dst.iter_mut().zip(&held[src..src + ch]) {
                        *d = d.max(*s);
                    }
                }
            }
        }
    }
    out
}

/// Reads the node chain into layers, refusing whatever would not stream exactly.
fn read_layers(
    nodes: &[NodeProto],
    tensors: &HashMap<&str, &TensorProto>,
) -> Result<Vec<Layer>, String> {
    let mut layers: Vec<Layer> = Vec::new();
    let last = nodes.len().saturating_sub(1);
    for (i, node) in nodes.iter().enumerate() {
        match node.op_type.as_str() {
            // The first reshape turns [1, 76, 32, 1] into [1, 1, 76, 32] and the last [1, 96, 1, 1] into
            // [1, 1, 1, 96]: the same values in the same order.
            "Reshape" if i == 0 || i == last => {}
            "Conv" => layers.push(Layer::Conv(read_conv(node, tensors)?)),
            "LeakyRelu" => {
                let slope = float_attr(node, "alpha").unwrap_or(0.01);
                match layers.last_mut() {
                    Some(Layer::Conv(c)) if c.activation.is_none() => {
                        c.activation = Some((slope, f32::NEG_INFINITY))
                    }
                    _ => return Err("a LeakyRelu not right after a convolution".into()),
                }
            }
            "Max" => {
                let floor = node
                    .input
                    .iter()
                    .find_map(|name| tensors.get(name.as_str()))
                    .map(|t| floats(t))
                    .transpose()?
                    .filter(|v| v.len() == 1)
                    .ok_or("a Max that is not a floor by one constant")?[0];
                match layers.last_mut() {
                    Some(Layer::Conv(Conv {
                        activation: Some((_, f)),
                        ..
                    })) if *f == f32::NEG_INFINITY => *f = floor,
                    _ => return Err("a Max not right after an activation".into()),
                }
            }
            "MaxPool" => {
                let kernel = ints_attr(node, "kernel_shape");
                let strides = ints_attr(node, "strides");
                let pads = ints_attr(node, "pads");
                if kernel.len() != 2 || strides != kernel || pads.iter().any(|p| *p != 0) {
                    return Err(format!(
                        "a max-pool with kernel {kernel:?}, strides {strides:?}, pads {pads:?}"
                    ));
                }
                layers.push(Layer::Pool {
                    time: positive(kernel[0])?,
                    freq: positive(kernel[1])?,
                });
            }
            other => return Err(format!("a {other} node, which the stream cannot run")),
        }
    }
    Ok(layers)
}

fn read_conv(node: &NodeProto, tensors: &HashMap<&str, &TensorProto>) -> Result<Conv, String> {
    let weights = node
        .input
        .get(1)
        .and_then(|n| tensors.get(n.as_str()))
        .ok_or("a convolution without constant weights")?;
    let dims: Vec<usize> = weights
        .dims
        .iter()
        .map(|d| positive(*d))
        .collect::<Result<_, _>>()?;
    let &[outputs, inputs, kt, kf] = dims.as_slice() else {
        return Err(format!("convolution weights of shape {dims:?}"));
    };
    let strides = ints_attr(node, "strides");
    let dilations = ints_attr(node, "dilations");
    let group = int_attr(node, "group").unwrap_or(1);
    if strides.iter().any(|s| *s != 1) || dilations.iter().any(|d| *d != 1) || group != 1 {
        return Err("a strided, dilated or grouped convolution".into());
    }
    if let Some(pad) = node.attribute.iter().find(|a| a.name == "auto_pad") {
        if !pad.s.is_empty() && pad.s != b"NOTSET" && pad.s != b"VALID" {
            return Err("a convolution with automatic padding".into());
        }
    }
    let pads = ints_attr(node, "pads");
    let (pad_low, pad_high) = match pads.as_slice() {
        [] => (0, 0),
        [0, low, 0, high] => (usize::try_from(*low).map_err(|_| "a negative pad")?, {
            usize::try_from(*high).map_err(|_| "a negative pad")?
        }),
        _ => return Err(format!("a convolution padded along time ({pads:?})")),
    };
    let raw = floats(weights)?;
    if raw.len() != outputs * inputs * kt * kf {
        return Err("convolution weights of the wrong length".into());
    }
    // ONNX holds [outputs][inputs][kt][kf]; the im2col rows are [kt][kf][inputs], one column per output.
    let depth = kt * kf * inputs;
    let mut packed = vec![0.0; depth * outputs];
    for o in 0..outputs {
        for i in 0..inputs {
            for t in 0..kt {
                for f in 0..kf {
                    packed[((t * kf + f) * inputs + i) * outputs + o] =
                        raw[((o * inputs + i) * kt + t) * kf + f];
                }
            }
        }
    }
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        None => vec![0.0; outputs],
        Some(name) => {
            let b = floats(
                tensors
                    .get(name.as_str())
                    .ok_or("a bias that is not a constant")?,
            )?;
            if b.len() != outputs {
                return Err("a bias of the wrong length".into());
            }
            b
        }
    };
    Ok(Conv {
        kt,
        kf,
        inputs,
        outputs,
        pad_low,
        pad_high,
        weights: packed,
        bias,
        activation: None,
    })
}

/// A float tensor's values (raw little-endian bytes or the repeated field).
fn floats(t: &TensorProto) -> Result<Vec<f32>, String> {
    const FLOAT: i32 = 1;
    if t.data_type != FLOAT {
        return Err(format!("{} is not a float tensor", t.name));
    }
    if !t.float_data.is_empty() {
        return Ok(t.float_data.clone());
    }
    if !t.raw_data.len().is_multiple_of(4) {
        return Err(format!("{} has a torn float", t.name));
    }
    Ok(t.raw_data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn ints_attr(node: &NodeProto, name: &str) -> Vec<i64> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
        .unwrap_or_default()
}

fn int_attr(node: &NodeProto, name: &str) -> Option<i64> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

fn float_attr(node: &NodeProto, name: &str) -> Option<f32> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

fn positive(v: i64) -> Result<usize, String> {
    usize::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("a size of {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    fn model() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/embedding_model.onnx")
    }

    /// A reproducible mel-like sequence (values around openWakeWord's scaled range).
    fn frames(count: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..count * 32)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_stream_gives_the_whole_windows_embedding_step_after_step() {
        let net =
            EmbeddingNet::load(&model(), 76, 32).expect("embedding model (scripts/fetch-models)");
        assert_eq!(net.step_frames(), 8);
        assert_eq!(net.embedding_len(), 96);
        let plan = super::super::load_plan(&model(), &[&[1, 76, 32, 1]]).expect("tract plan");
        let whole = |window: &[f32]| -> Vec<f32> {
            let input =
                tract_ndarray::Array4::from_shape_vec((1, 76, 32, 1), window.to_vec()).unwrap();
            let out = plan.run(tvec!(Tensor::from(input).into())).unwrap();
            out[0]
                .to_plain_array_view::<f32>()
                .unwrap()
                .iter()
                .copied()
                .collect()
        };
        let sound = frames(76 + 8 * 30, 7);
        let (first, mut state) = net.start(&sound[..76 * 32]).unwrap();
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
                <= 1e-4 * b.iter().map(|v| v.abs()).fold(1.0f32, f32::max)
        };
        assert!(close(&first, &whole(&sound[..76 * 32])));
        for step in 1..=30 {
            let new = &sound[(76 + 8 * (step - 1)) * 32..(76 + 8 * step) * 32];
            let streamed = net.step(&mut state, new).unwrap();
            let window = &sound[8 * step * 32..(76 + 8 * step) * 32];
            let expected = whole(window);
            assert!(
                close(&streamed, &expected),
                "step {step}: {streamed:?} vs {expected:?}"
            );
        }
    }

    #[test]
    fn wrong_lengths_are_refused_not_run() {
        let net = EmbeddingNet::load(&model(), 76, 32).expect("embedding model");
        assert!(net.start(&[0.0; 75 * 32]).is_err());
        let (_, mut state) = net.start(&[1.0; 76 * 32]).unwrap();
        assert!(net.step(&mut state, &[0.0; 7 * 32]).is_err());
        assert!(net.step(&mut state, &[0.0; 8 * 32]).is_ok());
        // A window the pools cannot divide, or that does not end in one column, is refused at load.
        assert!(EmbeddingNet::load(&model(), 75, 32).is_err());
        assert!(EmbeddingNet::load(&model(), 84, 32).is_err());
    }

    #[test]
    fn a_model_that_is_not_the_chain_is_refused() {
        // The classifier has Gemm/Flatten nodes: not a streaming convolution chain.
        let classifier =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models/cache/hey_jarvis_v0.1.onnx");
        let err = EmbeddingNet::load(&classifier, 16, 96)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("a Flatten node, which the stream cannot run"),
            "{err}"
        );
        let missing = EmbeddingNet::load(Path::new("/nonexistent/embedding.onnx"), 76, 32);
        assert!(missing.is_err());
    }
}
