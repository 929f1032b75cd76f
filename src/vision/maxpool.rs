//! 2×2 max-pools with stride 2 and no padding over f32 NCHW (or CHW) planes, as [`MaxPool2x2`], put in place of
//! tract's `MaxPool` by [`rewrite`] before a face model is optimised. YuNet has four; tract's kernel for them took
//! 12–14 % of its time. Here each output row is the maximum of two input rows, then of neighbouring pairs, in passes
//! the compiler vectorises (with AVX2 when the CPU has it, checked at run time). [`pool_rows`] is shared with
//! [`crate::vision::depthwise`], which folds a max-pool into the convolution before it when nothing else reads the
//! convolution's output. A maximum has no rounding: results are tract's, bit for bit, for every number but NaN.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The maximum of each 2×2 block of each plane of an NCHW (or CHW) f32 tensor; an odd last row or column is
/// dropped, as an unpadded ONNX `MaxPool` drops it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool2x2;

/// `out[x] = max(a[2x], a[2x+1], b[2x], b[2x+1])` for every `x` of `out`; `a` and `b` hold at least `2·out.len()`.
#[inline(always)]
pub(crate) fn pool_rows(out: &mut [f32], a: &[f32], b: &[f32]) {
    let n = out.len();
    let (a, b) = (&a[..2 * n], &b[..2 * n]);
    for (o, (pa, pb)) in out.iter_mut().zip(a.chunks_exact(2).zip(b.chunks_exact(2))) {
        *o = pa[0].max(pb[0]).max(pa[1].max(pb[1]));
    }
}

/// One plane of `h`×`w` into `out`, `(h/2)×(w/2)`.
#[inline(always)]
fn pool_plane(plane: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
    let wo = w / 2;
    if wo == 0 {
        return;
    }
    for (rows, orow) in plane
        .chunks_exact(2 * w)
        .zip(out.chunks_exact_mut(wo))
        .take(h / 2)
    {
        let (a, b) = rows.split_at(w);
        pool_rows(orow, a, b);
    }
}

/// [`pool_plane`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pool_plane_avx2(plane: &[f32], hw: (usize, usize), out: &mut [f32]) {
    pool_plane(plane, hw, out)
}

/// [`pool_plane`] with the widest vectors this CPU has.
fn pool_plane_fastest(plane: &[f32], hw: (usize, usize), out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the function only needs AVX2, and this CPU has it (checked just above).
        return unsafe { pool_plane_avx2(plane, hw, out) };
    }
    pool_plane(plane, hw, out)
}

impl Op for MaxPool2x2 {
    fn name(&self) -> StaticName {
        "MaxPool2x2".into()
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool2x2 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 1, "MaxPool2x2 takes one input");
        let x = &inputs[0];
        let shape = x.shape();
        ensure!(
            shape.len() == 3 || shape.len() == 4,
            "MaxPool2x2 wants NCHW or CHW, got {shape:?}"
        );
        let r = shape.len();
        let (h, w) = (shape[r - 2], shape[r - 1]);
        let mut out_shape = shape.to_vec();
        (out_shape[r - 2], out_shape[r - 1]) = (h / 2, w / 2);
        let x_view = x.try_as_plain_ram()?;
        let input = x_view.as_slice::<f32>()?;
        ensure!(
            input.len() == shape.iter().product::<usize>(),
            "MaxPool2x2 over {} values for {shape:?}",
            input.len()
        );
        if (h / 2) * (w / 2) == 0 {
            return Ok(tvec!(Tensor::zero::<f32>(&out_shape)?.into_tvalue()));
        }
        // SAFETY: an f32 tensor, every element of which is written below before anything reads it: each plane's
        // `h/2` rows of `w/2` are written whole by `pool_plane`, and the planes cover the tensor.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        let mut out_view = out.try_as_plain_ram_mut()?;
        let output = out_view.as_slice_mut::<f32>()?;
        for (plane, out_plane) in input
            .chunks_exact(h * w)
            .zip(output.chunks_exact_mut((h / 2) * (w / 2)))
        {
            pool_plane_fastest(plane, (h, w), out_plane);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MaxPool2x2 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        let shape = inputs[0]
            .shape
            .as_concrete()
            .context("MaxPool2x2 needs a concrete input shape")?;
        ensure!(shape.len() == 4 || shape.len() == 3);
        let mut out = shape.to_vec();
        let r = out.len();
        (out[r - 2], out[r - 1]) = (shape[r - 2] / 2, shape[r - 1] / 2);
        Ok(tvec!(f32::fact(out)))
    }

    as_op!();
}

/// Whether `node` is a 2×2, stride-2, unpadded max-pool without indices over `format` planes.
pub(crate) fn is_pool_2x2(node: &TypedNode, format: DataFormat) -> bool {
    let Some(pool) = node.op_as::<MaxPool>() else {
        return false;
    };
    let spec = &pool.pool_spec;
    pool.with_index_outputs.is_none()
        && spec.data_format == format
        && spec.kernel_shape.as_slice() == [2, 2]
        && spec
            .strides
            .as_ref()
            .is_some_and(|s| s.as_slice() == [2, 2])
        && spec
            .dilations
            .as_ref()
            .is_none_or(|d| d.iter().all(|&d| d == 1))
        && spec.padding == PaddingSpec::Valid
}

/// Puts a [`MaxPool2x2`] in place of every max-pool of `model` it computes (decluttered, not yet optimised) over an
/// f32 input of known shape; returns how many.
pub fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut found = Vec::new();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(format) = node.op_as::<MaxPool>().map(|p| p.pool_spec.data_format) else {
            continue;
        };
        let [input] = node.inputs.as_slice() else {
            continue;
        };
        let fact = model.outlet_fact(*input)?;
        let rank_fits = match format {
            DataFormat::NCHW => fact.rank() == 4,
            DataFormat::CHW => fact.rank() == 3,
            _ => false,
        };
        if rank_fits
            && is_pool_2x2(node, format)
            && fact.datum_type == f32::datum_type()
            && fact.shape.as_concrete().is_some()
        {
            found.push(id);
        }
    }
    for &id in &found {
        let node = model.node(id);
        TypedModelPatch::replace_single_op(model, node, &node.inputs, MaxPool2x2)?.apply(model)?;
    }
    if !found.is_empty() {
        *model = std::mem::take(model).into_compact()?;
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PoolSpec;

    fn pool_model(shape: &[usize], kernel: usize, stride: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact(shape)).expect("source");
        let pool = MaxPool {
            pool_spec: PoolSpec {
                data_format: if shape.len() == 4 {
                    DataFormat::NCHW
                } else {
                    DataFormat::CHW
                },
                kernel_shape: tvec!(kernel, kernel),
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: Some(tvec!(stride, stride)),
                input_channels: shape[shape.len() - 3],
                output_channels: shape[shape.len() - 3],
            },
            with_index_outputs: None,
        };
        let y = model.wire_node("pool", pool, &[x]).expect("pool");
        model.select_output_outlets(&y).expect("output");
        model
    }

    fn run(model: TypedModel, x: &Tensor) -> Tensor {
        let out = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .and_then(|p| p.run(tvec!(x.clone().into_tvalue())))
            .expect("run");
        out[0].clone().into_tensor()
    }

    /// The pool as ONNX defines it, element by element.
    fn reference(shape: &[usize], x: &[f32]) -> Vec<f32> {
        let r = shape.len();
        let (h, w) = (shape[r - 2], shape[r - 1]);
        let planes = x.len() / (h * w);
        let mut out = Vec::new();
        for p in 0..planes {
            for y in 0..h / 2 {
                for c in 0..w / 2 {
                    let at = |dy: usize, dx: usize| x[p * h * w + (2 * y + dy) * w + 2 * c + dx];
                    out.push(at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
                }
            }
        }
        out
    }

    #[test]
    fn it_pools_as_onnx_and_tract_do_over_odd_sizes_and_infinities() {
        // With a 1-wide or 1-high plane the output is empty (tract's own pool panics on it).
        let shapes: [&[usize]; 6] = [
            &[1, 3, 8, 8],
            &[2, 2, 7, 5],
            &[1, 2, 1, 1],
            &[1, 1, 3, 1],
            &[3, 9, 40],
            &[1, 4, 2, 35],
        ];
        for shape in shapes {
            let len: usize = shape.iter().product();
            let mut values: Vec<f32> = (0..len)
                .map(|i| ((i * 7919) % 211) as f32 / 7.0 - 15.0)
                .collect();
            values[0] = f32::NEG_INFINITY;
            values[len - 1] = f32::INFINITY;
            let x = Tensor::from_shape(shape, &values).expect("x");
            let mut model = pool_model(shape, 2, 2);
            assert_eq!(rewrite(&mut model).expect("rewrite"), 1, "{shape:?}");
            let ours = run(model, &x);
            let r = shape.len();
            let mut out_shape = shape.to_vec();
            (out_shape[r - 2], out_shape[r - 1]) = (shape[r - 2] / 2, shape[r - 1] / 2);
            assert_eq!(ours.shape(), out_shape.as_slice());
            let flat: Vec<f32> = ours
                .to_plain_array_view::<f32>()
                .expect("f32")
                .iter()
                .copied()
                .collect();
            assert_eq!(flat, reference(shape, &values), "{shape:?}");
            if !flat.is_empty() {
                assert_eq!(
                    ours,
                    run(pool_model(shape, 2, 2), &x),
                    "{shape:?} against tract"
                );
            }
        }
    }

    #[test]
    fn other_pools_are_left_to_tract_and_a_lying_input_is_refused() {
        let mut model = pool_model(&[1, 2, 9, 9], 3, 2);
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        let mut model = pool_model(&[1, 2, 9, 9], 2, 1);
        assert_eq!(rewrite(&mut model).expect("rewrite"), 0);
        // A rank the op does not know is an error at evaluation, not a read out of bounds.
        let x = Tensor::zero::<f32>(&[4, 4]).expect("x");
        assert!(MaxPool2x2
            .eval(&EvalContext::out_of_plan(), tvec!(x.into_tvalue()))
            .is_err());
    }
}
