//! Updating a Slint model in place from a freshly built list of rows: only rows that differ are written, so an
//! unchanged poll costs no redraw and a changed gauge repaints only its own row.

use std::rc::Rc;

use slint::{Model, ModelRc, VecModel};

/// Makes `model` equal to `rows`, touching only what changed. Returns how many rows were written, added or removed.
pub fn sync<T: Clone + PartialEq + 'static>(model: &VecModel<T>, rows: &[T]) -> usize {
    let mut touched = 0;
    let common = model.row_count().min(rows.len());
    for (i, row) in rows.iter().enumerate().take(common) {
        if model.row_data(i).as_ref() != Some(row) {
            model.set_row_data(i, row.clone());
            touched += 1;
        }
    }
    while model.row_count() > rows.len() {
        model.remove(model.row_count() - 1);
        touched += 1;
    }
    for row in &rows[common..] {
        model.push(row.clone());
        touched += 1;
    }
    touched
}

/// A new shared model and the handle to give a Slint property.
pub fn new_model<T: Clone + 'static>() -> (Rc<VecModel<T>>, ModelRc<T>) {
    let model = Rc::new(VecModel::default());
    (model.clone(), ModelRc::from(model))
}

/// Syncs the `VecModel` behind `handle` (a property set with [`new_model`]); false if it is some other model.
pub fn sync_handle<T: Clone + PartialEq + 'static>(handle: &ModelRc<T>, rows: &[T]) -> bool {
    match handle.as_any().downcast_ref::<VecModel<T>>() {
        Some(m) => {
            sync(m, rows);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_rows_are_written() {
        let (m, _) = new_model::<i32>();
        assert_eq!(sync(&m, &[1, 2, 3]), 3);
        assert_eq!(sync(&m, &[1, 2, 3]), 0);
        assert_eq!(sync(&m, &[1, 5, 3, 4]), 2);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 5, 3, 4]);
        assert_eq!(sync(&m, &[1]), 3);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn a_handle_syncs_its_model() {
        let (m, handle) = new_model::<i32>();
        assert!(sync_handle(&handle, &[7, 8]));
        assert_eq!(m.row_count(), 2);
        let other: ModelRc<i32> = ModelRc::new(slint::VecModel::from(vec![1]));
        assert!(sync_handle(&other, &[2]));
        use slint::ModelExt;
        let filtered: ModelRc<i32> =
            ModelRc::new(Rc::new(VecModel::from(vec![1])).filter(|_| true));
        assert!(
            !sync_handle(&filtered, &[3]),
            "only a VecModel can be synced"
        );
    }
}
