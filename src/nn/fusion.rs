//! What Jarvis's own model ops ([`crate::vision::depthwise`], [`crate::vision::pointwise`],
//! [`crate::voice::tts::conv1d`]) share when they take a node of a decluttered model and the nodes around it that
//! they fold in: finding the one reader of a value, telling a ReLU, and putting one op in place of each such chain.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::math::Max;

/// The one node that reads `node`'s output, when nothing else (no other node, no model output) does.
pub(crate) fn only_successor<'m>(model: &'m TypedModel, node: &TypedNode) -> Option<&'m TypedNode> {
    let [output] = node.outputs.as_slice() else {
        return None;
    };
    let [next] = output.successors.as_slice() else {
        return None;
    };
    let outlet = OutletId::new(node.id, 0);
    if model.output_outlets().ok()?.contains(&outlet) {
        return None;
    }
    Some(model.node(next.node))
}

/// The input of a two-input `node` that is not `input`, when `input` is one of them.
pub(crate) fn other_input(node: &TypedNode, input: OutletId) -> Option<OutletId> {
    match *node.inputs.as_slice() {
        [a, b] if a == input => Some(b),
        [a, b] if b == input => Some(a),
        _ => None,
    }
}

/// Whether `node` is a ReLU of `input` as a decluttered ONNX model has it: the maximum of its input and a constant
/// zero that only broadcasts.
pub(crate) fn is_relu(model: &TypedModel, node: &TypedNode, input: OutletId) -> TractResult<bool> {
    let Some(op) = node.op_as::<TypedBinOp>() else {
        return Ok(false);
    };
    let Some(other) = other_input(node, input).filter(|_| op.0.is::<Max>()) else {
        return Ok(false);
    };
    let Some(zero) = model.outlet_fact(other)?.konst.clone() else {
        return Ok(false);
    };
    let rank = model.outlet_fact(input)?.rank();
    Ok(zero.datum_type() == f32::datum_type()
        && zero.rank() <= rank
        && zero.shape().iter().all(|&d| d == 1)
        && zero.try_as_plain_ram()?.as_slice::<f32>()? == [0.0])
}

/// For every node of `model` (in evaluation order) that `replacement` takes — giving the op and the last node of the
/// chain it replaces — wires the op on the node's first input in place of the chain's output; compacts the model
/// when anything changed. Returns how many.
pub(crate) fn replace_chains<O: TypedOp + Clone>(
    model: &mut TypedModel,
    replacement: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<(O, usize)>>,
) -> TractResult<usize> {
    replace_chains_reading(model, |model, node| {
        let found = replacement(model, node)?;
        Ok(found.map(|(op, last)| (op, node.id, last)))
    })
}

/// As [`replace_chains`], but `replacement` also names the node whose first input the op reads (a chain may start
/// before the node it is found at: a convolution's LeakyReLU that other nodes read too is recomputed by the op,
/// from the LeakyReLU's input). That input is looked up as each chain is replaced, after the chains before it: one
/// chain's input may be another's output.
pub(crate) fn replace_chains_reading<O: TypedOp + Clone>(
    model: &mut TypedModel,
    replacement: impl Fn(&TypedModel, &TypedNode) -> TractResult<Option<(O, usize, usize)>>,
) -> TractResult<usize> {
    let mut found = Vec::new();
    for id in model.eval_order()? {
        if let Some((op, reader, last)) = replacement(model, model.node(id))? {
            found.push((id, op, reader, last));
        }
    }
    for (id, op, reader, last) in &found {
        let first = model.node(*id);
        let mut patch = TypedModelPatch::default();
        let x = patch.tap_model(model, model.node(*reader).inputs[0])?;
        let y = patch.wire_node(&first.name, op.clone(), &[x])?;
        patch.shunt_outside(model, OutletId::new(*last, 0), y[0])?;
        patch.apply(model)?;
    }
    if !found.is_empty() {
        *model = std::mem::take(model).into_compact()?;
    }
    Ok(found.len())
}
