//! One-dimensional transposed convolutions (HiFi-GAN's upsampling layers: strides 8, 8 and 4, kernels twice the
//! stride) as [`Deconv1d`], put in place of tract's `Deconv` in the Piper decoder by [`rewrite`], with the LeakyReLU
//! before each folded in. tract computes one as a matrix product into `O·K` columns per input sample, then adds the
//! overlapping columns into place (`DeconvSum`): two passes, the first over K/stride times the output's size.
//!
//! Here each output phase (the outputs `r` past a multiple of the stride) is an ordinary convolution of the input
//! with every stride-th tap, reversed; so all the phases are one [`Conv1d`] with `O·stride` output channels and
//! `⌈K/stride⌉` taps, and each tile of its outputs is interleaved into place while it is still in the cache. The
//! sums are the same products added in another order (tests compare with tract's).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Deconv, KernelFormat, PaddingSpec};

use super::conv1d::{constant_weights, through_leaky, Conv1d};
use crate::nn::fusion::replace_chains_reading;

/// `y[o, s·q + k − pad_before] += w[o, i, k]·x'[i, q]` over every input sample `q` and tap `k`, plus `bias[o]`, with
/// `x' = leaky(x)` when a LeakyReLU was folded in. Input `[N, I, L]`, output `[N, O, L']` with
/// `L' = s·(L − 1) + K − pad_before − pad_after + adjustment`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deconv1d {
    /// Output channel `o·stride + r` is phase `r` of output channel `o`.
    phases: Conv1d,
    outputs: usize,
    stride: usize,
    taps: usize,
    pad: (usize, usize),
    adjustment: usize,
}

impl Deconv1d {
    /// The op for `weights` `[O, I, K]`, `bias` (`[O]` or one value) at `stride`, or `None` when they disagree or
    /// the padding reaches past the phases' taps.
    fn new(
        weights: &Tensor,
        bias: &Tensor,
        stride: usize,
        pad: (usize, usize),
        adjustment: usize,
    ) -> TractResult<Option<Deconv1d>> {
        let &[outputs, inputs, taps] = weights.shape() else {
            return Ok(None);
        };
        if weights.datum_type() != f32::datum_type()
            || bias.datum_type() != f32::datum_type()
            || stride == 0
            || outputs * inputs * taps == 0
            || !(bias.len() == 1 || bias.len() == outputs)
        {
            return Ok(None);
        }
        let phase_taps = taps.div_ceil(stride);
        let first = pad.0 / stride;
        let Some(phase_pad) = (phase_taps - 1).checked_sub(first) else {
            return Ok(None);
        };
        let w_view = weights.try_as_plain_ram()?;
        let w = w_view.as_slice::<f32>()?;
        let b_view = bias.try_as_plain_ram()?;
        let b = b_view.as_slice::<f32>()?;
        let mut phase_weights = vec![0.0f32; outputs * stride * inputs * phase_taps];
        let mut phase_bias = vec![0.0f32; outputs * stride];
        for o in 0..outputs {
            for r in 0..stride {
                let row = o * stride + r;
                phase_bias[row] = if b.len() == 1 { b[0] } else { b[o] };
                for i in 0..inputs {
                    for k in 0..phase_taps {
                        let tap = r + stride * (phase_taps - 1 - k);
                        if tap < taps {
                            phase_weights[(row * inputs + i) * phase_taps + k] =
                                w[(o * inputs + i) * taps + tap];
                        }
                    }
                }
            }
        }
        let phase_weights =
            Tensor::from_shape(&[outputs * stride, inputs, phase_taps], &phase_weights)?;
        let Some(phases) = Conv1d::new(&phase_weights, &tensor1(&phase_bias), 1, (phase_pad, 0))?
        else {
            return Ok(None);
        };
        Ok(Some(Deconv1d {
            phases,
            outputs,
            stride,
            taps,
            pad,
            adjustment,
        }))
    }

    /// The output length for `len` input samples, or `None` when there is none.
    fn output_len(&self, len: usize) -> Option<usize> {
        (self.stride * len.checked_sub(1)? + self.taps + self.adjustment)
            .checked_sub(self.pad.0 + self.pad.1)
            .filter(|&n| n > 0)
    }

    /// One batch item: `x` is `[I, len]`, `out` `[O, out_len]`.
    fn run(&self, x: &[f32], len: usize, out: &mut [f32], out_len: usize) -> TractResult<()> {
        let (s, pad) = (self.stride, self.pad.0);
        let first = pad / s;
        let phase_len = (pad + out_len - 1) / s - first + 1;
        self.phases
            .run_tiles(x, len, phase_len, |t0, count, block| {
                for (o, out_row) in out.chunks_exact_mut(out_len).enumerate() {
                    let rows = &block[o * s * count..(o + 1) * s * count];
                    for c in 0..count {
                        // Output u = s·m + r of the uncropped signal, for m = first + t0 + c, lands at u − pad.
                        let u = s * (first + t0 + c);
                        for r in 0..s {
                            if let Some(t) = (u + r).checked_sub(pad).filter(|&t| t < out_len) {
                                out_row[t] = rows[r * count + c];
                            }
                        }
                    }
                }
            })
    }
}

impl Op for Deconv1d {
    fn name(&self) -> StaticName {
        "Deconv1d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "-> {} channels, {} taps at stride {}, pads {:?}; phases: {}",
            self.outputs,
            self.taps,
            self.stride,
            self.pad,
            self.phases.info()?.join(", ")
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Deconv1d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Deconv1d takes one input");
        let x = &inputs[0];
        let &[batch, channels, len] = x.shape() else {
            bail!("Deconv1d wants [N, C, L], got {:?}", x.shape());
        };
        let out_len = self
            .output_len(len)
            .with_context(|| format!("Deconv1d over {len} samples makes no output"))?;
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        ensure!(
            input.len() == batch * channels * len,
            "Deconv1d over {:?}",
            x.shape()
        );
        let out_shape = [batch, self.outputs, out_len];
        if batch == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: output t is
        // phase (t + pad) mod s of step (t + pad) / s, and the phases' steps cover [pad / s, (pad + L' − 1) / s].
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        for (x, y) in input
            .chunks_exact(channels * len)
            .zip(output.chunks_exact_mut(self.outputs * out_len))
        {
            self.run(x, len, y, out_len)?;
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Deconv1d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let x = inputs[0];
        ensure!(x.datum_type == f32::datum_type() && x.rank() == 3);
        let len = x.shape[2].clone() * self.stride as i64 + (self.taps + self.adjustment) as i64
            - (self.stride + self.pad.0 + self.pad.1) as i64;
        Ok(tvec!(f32::fact(&[
            x.shape[0].clone(),
            self.outputs.to_dim(),
            len
        ])))
    }

    as_op!();
}

/// The [`Deconv1d`] for `node` when it is a float one-dimensional transposed convolution over `[N, C, L]`, one
/// group, no dilation, explicit padding, a constant kernel and bias.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Deconv1d>> {
    let Some(deconv) = node.op_as::<Deconv>() else {
        return Ok(None);
    };
    let spec = &deconv.pool_spec;
    let undilated = spec
        .dilations
        .as_ref()
        .is_none_or(|d| d.iter().all(|&d| d == 1));
    let stride = match &spec.strides {
        None => 1,
        Some(s) if s.len() == 1 => s[0],
        Some(_) => return Ok(None),
    };
    let pad = match &spec.padding {
        PaddingSpec::Explicit(before, after) if before.len() == 1 && after.len() == 1 => {
            (before[0], after[0])
        }
        PaddingSpec::Valid => (0, 0),
        _ => return Ok(None),
    };
    let &[adjustment] = deconv.adjustments.as_slice() else {
        return Ok(None);
    };
    if !undilated || deconv.group != 1 || deconv.kernel_format != KernelFormat::OIHW {
        return Ok(None);
    }
    let Some((kernel, bias)) = constant_weights(model, node, spec)? else {
        return Ok(None);
    };
    Deconv1d::new(&kernel, &bias, stride, pad, adjustment)
}

/// The op for the transposed convolution `node` with the LeakyReLU before it folded in; the node whose first input
/// it reads, and the node it replaces.
fn fused_replacement(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<(Deconv1d, usize, usize)>> {
    let (Some(mut op), Some((_, leak, reader))) =
        (replacement(model, node)?, through_leaky(model, node))
    else {
        return Ok(None);
    };
    if let Some(slope) = leak {
        op.phases.set_leak(slope);
    }
    Ok(Some((op, reader, node.id)))
}

/// Puts a [`Deconv1d`] in place of every one-dimensional transposed convolution of `model` it can compute
/// (decluttered, not yet optimised; the length may be symbolic), with a LeakyReLU before it folded in; returns how
/// many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    replace_chains_reading(model, fused_replacement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;
    use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
    use tract_onnx::tract_core::ops::nn::DataFormat;
    use tract_onnx::tract_core::ops::nn::LeakyRelu;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A transposed convolution: input channels, output channels, taps, stride, padding, adjustment.
    type Shape = (usize, usize, usize, usize, (usize, usize), usize);

    fn wire_deconv(
        model: &mut TypedModel,
        x: OutletId,
        (i, o, k, s, pad, adj): Shape,
        dilation: usize,
        group: usize,
    ) -> OutletId {
        let w = Tensor::from_shape(&[o, i / group, k], &values(o * i / group * k, 5)).unwrap();
        let kernel = model.add_const("w", w).unwrap();
        let bias = model
            .add_const("b", Tensor::from_shape(&[o], &values(o, 11)).unwrap())
            .unwrap();
        let op = Deconv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec!(k),
                padding: PaddingSpec::Explicit(tvec!(pad.0), tvec!(pad.1)),
                dilations: Some(tvec!(dilation)),
                strides: Some(tvec!(s)),
                input_channels: i,
                output_channels: o,
            },
            kernel_format: KernelFormat::OIHW,
            adjustments: tvec!(adj),
            group,
        };
        model.wire_node("deconv", op, &[x, kernel, bias]).unwrap()[0]
    }

    fn run(model: TypedModel, x: &Tensor) -> Vec<f32> {
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        plan.run(tvec!(x.clone().into())).unwrap()[0]
            .to_plain_array_view::<f32>()
            .unwrap()
            .iter()
            .copied()
            .collect()
    }

    fn assert_close(ours: &[f32], reference: &[f32], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}: lengths");
        for (i, (x, y)) in ours.iter().zip(reference).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                "{what}: at {i} ours {x}, reference {y}"
            );
        }
    }

    fn ops(model: &TypedModel) -> Vec<String> {
        model
            .nodes()
            .iter()
            .map(|n| n.op().name().to_string())
            .filter(|n| n != "Source" && n != "Const")
            .collect()
    }

    #[test]
    fn it_computes_what_tracts_transposed_convolution_computes() {
        let cases: [(Shape, usize, usize, bool); 7] = [
            // HiFi-GAN's: kernel twice the stride, padding half the stride.
            ((4, 3, 16, 8, (4, 4), 0), 1, 10, false),
            ((8, 4, 8, 4, (2, 2), 0), 1, 37, true),
            // Taps that do not divide by the stride (phases with fewer taps), an adjustment, a batch of two.
            ((3, 5, 5, 2, (0, 0), 1), 2, 9, false),
            ((2, 6, 3, 3, (1, 1), 0), 1, 20, true),
            // Stride 1 (an ordinary convolution, reversed), one input sample, padding past the first phase.
            ((5, 4, 3, 1, (1, 1), 0), 1, 1, false),
            ((5, 4, 7, 2, (3, 2), 0), 1, 6, false),
            // Enough output channels × stride for several tiles of a long signal.
            ((64, 8, 8, 4, (2, 2), 0), 1, 300, true),
        ];
        for (shape, batch, len, leaky) in cases {
            let mut model = TypedModel::default();
            let x = model
                .add_source("x", f32::fact([batch, shape.0, len]))
                .unwrap();
            let input = if leaky {
                let op = ElementWiseOp(Box::new(LeakyRelu { alpha: 0.1 }), None);
                model.wire_node("leaky", op, &[x]).unwrap()[0]
            } else {
                x
            };
            let y = wire_deconv(&mut model, input, shape, 1, 1);
            model.select_output_outlets(&[y]).unwrap();
            let x = Tensor::from_shape(&[batch, shape.0, len], &values(batch * shape.0 * len, 1))
                .unwrap();
            let reference = run(model.clone(), &x);
            assert_eq!(rewrite(&mut model).unwrap(), 1, "{shape:?}");
            assert_eq!(ops(&model), vec!["Deconv1d".to_string()], "{shape:?}");
            assert_close(
                &run(model, &x),
                &reference,
                &format!("{shape:?} over {len}"),
            );
        }
    }

    #[test]
    fn other_transposed_convolutions_are_left_to_tract() {
        // Dilated, grouped, and padded past what the phases can reach.
        for (shape, dilation, group) in [
            ((4, 4, 4, 2, (1, 1), 0), 2, 1),
            ((4, 4, 4, 2, (1, 1), 0), 1, 2),
            ((4, 4, 2, 2, (4, 0), 0), 1, 1),
        ] {
            let mut model = TypedModel::default();
            let x = model.add_source("x", f32::fact([1, 4, 16])).unwrap();
            let y = wire_deconv(&mut model, x, shape, dilation, group);
            model.select_output_outlets(&[y]).unwrap();
            assert_eq!(rewrite(&mut model).unwrap(), 0, "{shape:?}");
        }
    }

    #[test]
    fn lying_inputs_are_refused() {
        let w = Tensor::from_shape(&[3, 4, 8], &values(96, 0)).unwrap();
        let b = Tensor::from_shape(&[3], &values(3, 0)).unwrap();
        let op = Deconv1d::new(&w, &b, 4, (2, 2), 0).unwrap().unwrap();
        let eval = |shape: &[usize]| {
            let n = shape.iter().product();
            let x = Tensor::from_shape(shape, &values(n, 0)).unwrap();
            op.eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
        };
        assert_eq!(eval(&[1, 4, 5]).unwrap()[0].shape(), &[1, 3, 20]);
        assert!(eval(&[1, 5, 5]).is_err(), "wrong channel count");
        assert!(eval(&[1, 4, 0]).is_err(), "no samples");
        assert!(eval(&[4, 5]).is_err(), "no batch axis");
        let two = Tensor::from_shape(&[2], &[0.0f32; 2]).unwrap();
        assert!(Deconv1d::new(&w, &two, 4, (2, 2), 0).unwrap().is_none());
        assert!(Deconv1d::new(&w, &b, 0, (0, 0), 0).unwrap().is_none());
    }
}
