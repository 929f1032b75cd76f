//! 3×3 depthwise convolutions (one filter per channel, padding 1, stride 1 or 2) as [`Depthwise3x3`], put in place
//! of tract's `Conv` by [`rewrite`] before a face model is optimised, with the ReLU and the 2×2 max-pool that follow
//! one folded in when nothing else reads what they would consume (YuNet: each such triple was three passes over a
//! large plane; now the convolved rows are pooled as they are made and never stored). tract vectorises only wide
//! stride-1 planes (`depthwise::contiguous`) and walks the rest tap by tap; SFace's 56×56 and smaller planes and
//! its stride-2 convolutions were the slow case. Each plane is copied once with a border of zeros (at stride 2,
//! each row's even and odd columns apart), so every output row is one pass of nine multiply-adds over contiguous
//! views, which the compiler vectorises; compiled for AVX2 and FMA when the CPU has them (checked at run time, as
//! tract checks for its own kernels; without them the same code is slower than tract's). The sums are the same
//! products added in another order, so results agree with tract's to rounding (tests compare both).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use crate::nn::fusion::{is_relu, only_successor, replace_chains};
use crate::vision::maxpool::{is_pool_2x2, pool_rows};

/// A depthwise 3×3 convolution over NCHW (or CHW, a batch of one) f32, zero padding of one on every side, and what
/// followed it in the model when the rewrite could fold it in: a ReLU, then a 2×2 max-pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise3x3 {
    /// `[C, 9]`: each channel's filter, row by row.
    kernel: Arc<Tensor>,
    /// `[C]`.
    bias: Arc<Tensor>,
    /// 1 or 2, along both axes.
    stride: usize,
    /// `max(y, 0)` on the convolution's output: a ReLU that followed it.
    relu: bool,
    /// Then the maximum of each 2×2 block, stride 2, no padding (an odd last row or column is dropped): a max-pool
    /// that followed. The convolution's output is never stored whole.
    pool: bool,
}

impl Depthwise3x3 {
    fn convolved_side(side: usize, stride: usize) -> usize {
        if side == 0 {
            0
        } else {
            (side - 1) / stride + 1
        }
    }

    /// The output's height and width for an input plane of `h`×`w`.
    fn output_plane(&self, h: usize, w: usize) -> (usize, usize) {
        let (ho, wo) = (
            Self::convolved_side(h, self.stride),
            Self::convolved_side(w, self.stride),
        );
        if self.pool {
            (ho / 2, wo / 2)
        } else {
            (ho, wo)
        }
    }
}

/// `a·b + c`, fused when the caller is compiled with FMA (without it, `mul_add` would be a slow library call).
#[inline(always)]
fn mul_add<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `out[x] = bias + Σ k[3r+t]·taps[r][t][x]`: one output row from the three shifted views of each of three input
/// rows, in one pass the compiler vectorises (every view is cut to the row's length first, so no bounds checks).
#[inline(always)]
fn nine_taps<const FMA: bool>(out: &mut [f32], taps: [[&[f32]; 3]; 3], k: &[f32; 9], bias: f32) {
    let n = out.len();
    let [[a0, a1, a2], [b0, b1, b2], [c0, c1, c2]] = taps.map(|row| row.map(|view| &view[..n]));
    for (x, o) in out.iter_mut().enumerate() {
        let mut v = mul_add::<FMA>(k[0], a0[x], bias);
        v = mul_add::<FMA>(k[1], a1[x], v);
        v = mul_add::<FMA>(k[2], a2[x], v);
        v = mul_add::<FMA>(k[3], b0[x], v);
        v = mul_add::<FMA>(k[4], b1[x], v);
        v = mul_add::<FMA>(k[5], b2[x], v);
        v = mul_add::<FMA>(k[6], c0[x], v);
        v = mul_add::<FMA>(k[7], c1[x], v);
        *o = mul_add::<FMA>(k[8], c2[x], v);
    }
}

/// `max(v, 0)` in place. (Written as `if v > 0 { v } else { 0 }`, the compiler makes it a masked store of the zeros,
/// several times slower.)
#[inline(always)]
fn relu_row(row: &mut [f32]) {
    for v in row {
        *v = v.max(0.0);
    }
}

/// The buffers one plane needs besides its input and output, kept from plane to plane.
#[derive(Default)]
struct Scratch {
    /// The plane with a border of zeros, `(h+2)×(w+2)`; at stride 2 each padded row holds its even columns, then its
    /// odd ones, so that every view of it is contiguous.
    padded: Vec<f32>,
    /// Two convolved rows, when they are pooled.
    rows: [Vec<f32>; 2],
}

/// One channel's plane.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn convolve_plane<const FMA: bool>(
    plane: &[f32],
    (h, w): (usize, usize),
    k: &[f32; 9],
    bias: f32,
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let stride = op.stride;
    let wo = Depthwise3x3::convolved_side(w, stride);
    let pw = w + 2;
    let padded = &mut scratch.padded;
    padded.clear();
    padded.resize(pw, 0.0);
    for row in plane.chunks_exact(w) {
        if stride == 1 {
            padded.push(0.0);
            padded.extend_from_slice(row);
            padded.push(0.0);
        } else {
            // Padded columns 0, 2, 4, …: the zero, then the input's odd columns; then 1, 3, …: its even ones.
            // The right zero, padded column w+1, is even when w is odd.
            padded.push(0.0);
            padded.extend(row.iter().skip(1).step_by(2));
            if w % 2 == 1 {
                padded.push(0.0);
            }
            padded.extend(row.iter().step_by(2));
            if w % 2 == 0 {
                padded.push(0.0);
            }
        }
    }
    padded.resize(pw * (h + 2), 0.0);
    let padded = &scratch.padded;
    // Output row `oy` of the convolution alone. (No closure: a closure would not be compiled for AVX2 and FMA.)
    #[inline(always)]
    fn convolve_row<const FMA: bool>(
        padded: &[f32],
        (pw, stride): (usize, usize),
        (k, bias): (&[f32; 9], f32),
        oy: usize,
        orow: &mut [f32],
    ) {
        let wo = orow.len();
        let views = |r: usize| {
            let p = &padded[(oy * stride + r) * pw..(oy * stride + r + 1) * pw];
            if stride == 1 {
                [&p[..wo], &p[1..wo + 1], &p[2..wo + 2]]
            } else {
                let (even, odd) = p.split_at(pw.div_ceil(2));
                [&even[..wo], &odd[..wo], &even[1..wo + 1]]
            }
        };
        nine_taps::<FMA>(orow, [views(0), views(1), views(2)], k, bias);
    }
    let geometry = (pw, stride);
    let filter = (k, bias);
    let (_, out_w) = op.output_plane(h, w);
    if out_w == 0 {
        return;
    }
    if op.pool {
        let [a, b] = &mut scratch.rows;
        a.resize(wo, 0.0);
        b.resize(wo, 0.0);
        for (py, prow) in out.chunks_exact_mut(out_w).enumerate() {
            convolve_row::<FMA>(padded, geometry, filter, 2 * py, a);
            convolve_row::<FMA>(padded, geometry, filter, 2 * py + 1, b);
            pool_rows(prow, a, b);
            if op.relu {
                relu_row(prow);
            }
        }
    } else {
        for (oy, orow) in out.chunks_exact_mut(out_w).enumerate() {
            convolve_row::<FMA>(padded, geometry, filter, oy, orow);
            if op.relu {
                relu_row(orow);
            }
        }
    }
}

/// [`convolve_plane`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn convolve_plane_avx2(
    plane: &[f32],
    hw: (usize, usize),
    k: &[f32; 9],
    bias: f32,
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    convolve_plane::<true>(plane, hw, k, bias, op, out, scratch)
}

/// [`convolve_plane`] with the widest vectors this CPU has.
fn convolve_plane_fastest(
    plane: &[f32],
    hw: (usize, usize),
    k: &[f32; 9],
    bias: f32,
    op: &Depthwise3x3,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the function only needs AVX2 and FMA, and this CPU has both (checked just above).
        return unsafe { convolve_plane_avx2(plane, hw, k, bias, op, out, scratch) };
    }
    convolve_plane::<false>(plane, hw, k, bias, op, out, scratch)
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        "Depthwise3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "stride {}{}{}",
            self.stride,
            if self.relu { ", relu" } else { "" },
            if self.pool { ", 2×2 max-pool" } else { "" }
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Depthwise3x3 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "Depthwise3x3 takes one input");
        let x = &inputs[0];
        let shape = x.shape();
        let (n, c, h, w) = match *shape {
            [n, c, h, w] => (n, c, h, w),
            [c, h, w] => (1, c, h, w),
            _ => bail!("Depthwise3x3 wants NCHW or CHW, got {shape:?}"),
        };
        ensure!(h > 0 && w > 0, "Depthwise3x3 over an empty plane {shape:?}");
        let kernel_view = self.kernel.try_as_plain_ram()?;
        let kernel = kernel_view.as_slice::<f32>()?;
        let bias_view = self.bias.try_as_plain_ram()?;
        let bias = bias_view.as_slice::<f32>()?;
        ensure!(
            kernel.len() == c * 9 && bias.len() == c,
            "Depthwise3x3 for {} channels over {shape:?}",
            bias.len()
        );
        let (ho, wo) = self.output_plane(h, w);
        let out_shape = if shape.len() == 4 {
            vec![n, c, ho, wo]
        } else {
            vec![c, ho, wo]
        };
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        ensure!(
            input.len() == n * c * h * w,
            "Depthwise3x3 over {} values for {shape:?}",
            input.len()
        );
        if ho * wo == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: each plane's
        // output is written row by row, every row whole (`convolve_plane`), and the planes cover the tensor.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        let mut scratch = Scratch::default();
        for (i, (plane, out_plane)) in input
            .chunks_exact(h * w)
            .zip(output.chunks_exact_mut(ho * wo))
            .enumerate()
        {
            let ch = i % c;
            convolve_plane_fastest(
                plane,
                (h, w),
                <&[f32; 9]>::try_from(&kernel[ch * 9..ch * 9 + 9])?,
                bias[ch],
                self,
                out_plane,
                &mut scratch,
            );
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Depthwise3x3 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("Depthwise3x3 needs a concrete input shape")?;
        ensure!(shape.len() == 4 || shape.len() == 3);
        let mut out = shape.to_vec();
        let r = out.len();
        (out[r - 2], out[r - 1]) = self.output_plane(shape[r - 2], shape[r - 1]);
        Ok(tvec!(f32::fact(out)))
    }

    as_op!();
}

/// The [`Depthwise3x3`] for `node` when it is a float NCHW (or CHW) convolution with one 3×3 filter per channel, padding 1,
/// stride 1 or 2, no dilation, a constant kernel and bias, over an input of known shape.
fn replacement(model: &TypedModel, node: &TypedNode) -> TractResult<Option<Depthwise3x3>> {
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = spec.input_channels;
    let one = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&d| d == 1));
    let stride = match &spec.strides {
        None => 1,
        Some(s) if s.len() == 2 && s[0] == s[1] && (s[0] == 1 || s[0] == 2) => s[0],
        Some(_) => return Ok(None),
    };
    let padded_by_one = match &spec.padding {
        PaddingSpec::Explicit(before, after) | PaddingSpec::ExplicitOnnxPool(before, after, _) => {
            before.iter().chain(after).all(|&p| p == 1) && before.len() == 2
        }
        _ => false,
    };
    let rank = match spec.data_format {
        DataFormat::NCHW => 4,
        DataFormat::CHW => 3,
        _ => return Ok(None),
    };
    if conv.q_params.is_some()
        || spec.kernel_shape.as_slice() != [3, 3]
        || !padded_by_one
        || !one(&spec.dilations)
        || conv.group != channels
        || spec.output_channels != channels
        || conv.kernel_fmt != KernelFormat::OIHW
        || node.inputs.len() != 3
    {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let concrete = x.shape.as_concrete().map(|s| s.to_vec());
    let (Some(shape), true) = (concrete, x.datum_type == f32::datum_type()) else {
        return Ok(None);
    };
    if shape.len() != rank || shape[rank - 3] != channels {
        return Ok(None);
    }
    let (Some(kernel), Some(bias)) = (
        model.outlet_fact(node.inputs[1])?.konst.clone(),
        model.outlet_fact(node.inputs[2])?.konst.clone(),
    ) else {
        return Ok(None);
    };
    if kernel.datum_type() != f32::datum_type()
        || kernel.shape() != [channels, 1, 3, 3]
        || bias.datum_type() != f32::datum_type()
    {
        return Ok(None);
    }
    let bias = match bias.len() {
        1 => {
            let view = bias.try_as_plain_ram()?;
            let value = view.as_slice::<f32>()?[0];
            Tensor::from_shape(&[channels], &vec![value; channels])?
        }
        n if n == channels => (*bias).clone().into_shape(&[channels])?,
        _ => return Ok(None),
    };
    Ok(Some(Depthwise3x3 {
        kernel: Arc::new((*kernel).clone().into_shape(&[channels, 9])?),
        bias: Arc::new(bias),
        stride,
        relu: false,
        pool: false,
    }))
}

/// The op for `node` with whatever follows it that it can fold in, and the last node it replaces.
fn fused_replacement(
    model: &TypedModel,
    node: &TypedNode,
    fuse: bool,
) -> TractResult<Option<(Depthwise3x3, usize)>> {
    let Some(mut op) = replacement(model, node)? else {
        return Ok(None);
    };
    let mut last = node;
    if !fuse {
        return Ok(Some((op, last.id)));
    }
    let format = node
        .op_as::<Conv>()
        .map(|c| c.pool_spec.data_format)
        .unwrap_or(DataFormat::NCHW);
    if let Some(next) = only_successor(model, last) {
        if is_relu(model, next, OutletId::new(last.id, 0))? {
            op.relu = true;
            last = next;
        }
    }
    if let Some(next) = only_successor(model, last) {
        if is_pool_2x2(next, format) {
            op.pool = true;
            last = next;
        }
    }
    Ok(Some((op, last.id)))
}

/// Puts a [`Depthwise3x3`] in place of every convolution of `model` it can compute (decluttered, not yet
/// optimised), with the ReLU and the 2×2 max-pool that follow it folded in when `fuse`; returns how many.
pub fn rewrite(model: &mut TypedModel, fuse: bool) -> TractResult<usize> {
    replace_chains(model, |model, node| fused_replacement(model, node, fuse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec};
    use tract_onnx::tract_core::ops::math::Max;

    /// An input shape, a stride and the bias (none: tract's scalar zero).
    type Case = (&'static [usize], usize, Option<Vec<f32>>);

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i + seed) * 7919) % 211) as f32 / 21.1 - 5.0)
            .collect()
    }

    /// A typed model of one tract `Conv`: the depthwise 3×3 of `shape`'s channels at `stride`.
    fn conv_model(shape: &[usize], stride: usize, bias: Option<Vec<f32>>) -> TypedModel {
        let c = shape[shape.len() - 3];
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("source");
        let kernel = model
            .add_const(
                "kernel",
                Tensor::from_shape(&[c, 1, 3, 3], &values(c * 9, 3)).expect("kernel"),
            )
            .expect("kernel");
        let bias = model
            .add_const(
                "bias",
                match bias {
                    Some(b) => Tensor::from_shape(&[c], &b).expect("bias"),
                    None => tensor0(0.0f32),
                },
            )
            .expect("bias");
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: if shape.len() == 4 {
                    DataFormat::NCHW
                } else {
                    DataFormat::CHW
                },
                kernel_shape: tvec!(3, 3),
                padding: PaddingSpec::Explicit(tvec!(1, 1), tvec!(1, 1)),
                dilations: None,
                strides: Some(tvec!(stride, stride)),
                input_channels: c,
                output_channels: c,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        };
        let y = model
            .wire_node("conv", conv, &[x, kernel, bias])
            .expect("conv");
        model.select_output_outlets(&y).expect("output");
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Vec<f32> {
        let out = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .and_then(|p| p.run(tvec!(x.clone().into_tvalue())))
            .expect("run");
        out[0]
            .to_plain_array_view::<f32>()
            .expect("f32")
            .iter()
            .copied()
            .collect()
    }

    #[test]
    fn it_computes_what_tracts_convolution_computes_at_both_strides_and_odd_sizes() {
        let cases: [Case; 9] = [
            (&[1, 3, 8, 8], 1, Some(vec![0.5, -1.0, 2.0])),
            (&[1, 3, 8, 8], 2, None),
            (&[2, 4, 7, 5], 2, Some(vec![1.0, 0.0, -3.0, 0.25])),
            (&[1, 2, 5, 7], 1, None),
            (&[1, 2, 1, 1], 1, None),
            (&[1, 2, 1, 3], 2, Some(vec![1.0, 2.0])),
            (&[1, 2, 2, 2], 2, None),
            // As decluttered models have them: the batch of one folded away.
            (&[3, 40, 37], 1, Some(vec![0.5, -1.0, 2.0])),
            (&[3, 17, 40], 2, None),
        ];
        for (shape, stride, bias) in cases {
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 11)).expect("x");
            let reference = run(conv_model(shape, stride, bias.clone()), &x);
            let mut model = conv_model(shape, stride, bias);
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1, "{shape:?}");
            let ours = run(model, &x);
            assert_eq!(ours.len(), reference.len(), "{shape:?} stride {stride}");
            for (a, b) in ours.iter().zip(&reference) {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{shape:?} stride {stride}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn other_convolutions_are_left_to_tract() {
        // Stride 3: not one this op computes.
        let mut model = conv_model(&[1, 2, 9, 9], 3, None);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 0);
        // A wrong channel count in the input is refused at evaluation, not read out of bounds.
        let op = Depthwise3x3 {
            kernel: Arc::new(Tensor::zero::<f32>(&[2, 9]).expect("kernel")),
            bias: Arc::new(Tensor::zero::<f32>(&[2]).expect("bias")),
            stride: 1,
            relu: false,
            pool: false,
        };
        let x = Tensor::zero::<f32>(&[1, 3, 4, 4]).expect("x");
        assert!(op
            .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
            .is_err());
    }

    /// `conv_model`'s convolution, then `max(y, floor)`, then a 2×2 max-pool; with `relu_is_output`, the maximum is
    /// a model output too.
    fn conv_relu_pool_model(
        shape: &[usize],
        stride: usize,
        floor: f32,
        relu_is_output: bool,
    ) -> TypedModel {
        let mut model = conv_model(shape, stride, Some(values(shape[shape.len() - 3], 5)));
        let conv = model.output_outlets().expect("outputs")[0];
        let rank = shape.len();
        let floor = model
            .add_const(
                "floor",
                Tensor::from_shape(&vec![1; rank], &[floor]).expect("floor"),
            )
            .expect("floor");
        let relu = model
            .wire_node("relu", TypedBinOp(Box::new(Max), None), &[conv, floor])
            .expect("relu");
        let pool = MaxPool {
            pool_spec: PoolSpec {
                data_format: if rank == 4 {
                    DataFormat::NCHW
                } else {
                    DataFormat::CHW
                },
                kernel_shape: tvec!(2, 2),
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec!(2, 2)),
                input_channels: shape[rank - 3],
                output_channels: shape[rank - 3],
            },
            with_index_outputs: None,
        };
        let pooled = model.wire_node("pool", pool, &relu).expect("pool");
        let mut outputs = pooled;
        if relu_is_output {
            outputs.push(relu[0]);
        }
        model.select_output_outlets(&outputs).expect("outputs");
        model
    }

    fn run_all(model: TypedModel, x: &Tensor) -> Vec<Vec<f32>> {
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .expect("plan");
        plan.run(tvec!(x.clone().into_tvalue()))
            .expect("run")
            .iter()
            .map(|t| {
                t.to_plain_array_view::<f32>()
                    .expect("f32")
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }

    /// The ops of `model` by name, in order.
    fn op_names(model: &TypedModel) -> Vec<String> {
        model
            .nodes
            .iter()
            .map(|n| n.op().name().to_string())
            .collect()
    }

    fn assert_close(ours: &[Vec<f32>], reference: &[Vec<f32>], what: &str) {
        assert_eq!(ours.len(), reference.len(), "{what}");
        for (a, b) in ours.iter().zip(reference) {
            assert_eq!(a.len(), b.len(), "{what}");
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                    "{what}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn a_relu_and_a_max_pool_after_the_convolution_are_folded_in() {
        let cases: [(&[usize], usize); 5] = [
            (&[1, 3, 8, 8], 1),
            (&[1, 2, 7, 9], 1),
            (&[1, 2, 9, 7], 2),
            (&[3, 10, 6], 1),
            (&[1, 2, 5, 6], 2),
        ];
        for (shape, stride) in cases {
            let x = Tensor::from_shape(shape, &values(shape.iter().product(), 2)).expect("x");
            let reference = run_all(conv_relu_pool_model(shape, stride, 0.0, false), &x);
            let mut model = conv_relu_pool_model(shape, stride, 0.0, false);
            assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
            let ops = op_names(&model);
            assert!(
                !ops.iter().any(|o| o == "Max" || o == "MaxPool"),
                "{shape:?}: {ops:?}"
            );
            let op = model
                .nodes
                .iter()
                .find_map(|n| n.op_as::<Depthwise3x3>())
                .expect("the op");
            assert!(op.relu && op.pool, "{shape:?}");
            assert_close(&run_all(model, &x), &reference, &format!("{shape:?}"));
            // Unfused, the same rewrite leaves both to tract.
            let mut model = conv_relu_pool_model(shape, stride, 0.0, false);
            assert_eq!(rewrite(&mut model, false).expect("rewrite"), 1);
            let ops = op_names(&model);
            assert!(ops.iter().any(|o| o == "Max") && ops.iter().any(|o| o == "MaxPool"));
            assert_close(
                &run_all(model, &x),
                &reference,
                &format!("{shape:?} unfused"),
            );
        }
    }

    #[test]
    fn what_else_reads_or_a_floor_that_is_not_zero_is_not_folded_in() {
        let shape = [1, 2, 6, 6];
        let x = Tensor::from_shape(&shape, &values(72, 9)).expect("x");
        // The ReLU's output is also a model output: the ReLU is folded in, the pool is not (it would lose it).
        let reference = run_all(conv_relu_pool_model(&shape, 1, 0.0, true), &x);
        let mut model = conv_relu_pool_model(&shape, 1, 0.0, true);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
        let op = model
            .nodes
            .iter()
            .find_map(|n| n.op_as::<Depthwise3x3>())
            .expect("the op");
        assert!(op.relu && !op.pool);
        assert!(op_names(&model).iter().any(|o| o == "MaxPool"));
        assert_close(&run_all(model, &x), &reference, "relu read twice");
        // max(y, 0.5) is not a ReLU.
        let reference = run_all(conv_relu_pool_model(&shape, 1, 0.5, false), &x);
        let mut model = conv_relu_pool_model(&shape, 1, 0.5, false);
        assert_eq!(rewrite(&mut model, true).expect("rewrite"), 1);
        let op = model
            .nodes
            .iter()
            .find_map(|n| n.op_as::<Depthwise3x3>())
            .expect("the op");
        assert!(!op.relu && !op.pool);
        assert_close(&run_all(model, &x), &reference, "floor 0.5");
    }
}
