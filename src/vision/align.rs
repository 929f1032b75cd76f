//! Face alignment: the five landmarks YuNet finds (eyes, nose tip, mouth corners) mapped onto the standard
//! 112×112 ArcFace template by a similarity transform (scale, rotation, translation: no shear, no mirror), fitted
//! by least squares; the crop is sampled bilinearly through the inverse transform. SFace was trained on crops made
//! this way, so the quality of the embedding depends on it.

use crate::vision::photo::Photo;

/// Side of the aligned crop.
pub const SIDE: usize = 112;

/// Where the five landmarks sit in a 112×112 crop (right eye, left eye as seen, nose, mouth corners): ArcFace's.
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform `p ↦ [a −b; b a]·p + t`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    pub fn apply(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            self.a * x - self.b * y + self.tx,
            self.b * x + self.a * y + self.ty,
        ]
    }

    /// The inverse transform; `None` when it collapses everything to a point.
    pub fn inverse(&self) -> Option<Similarity> {
        let d = self.a * self.a + self.b * self.b;
        if d < 1e-12 {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Similarity {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The scale factor.
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// The least-squares similarity taking `from` onto `to` (Umeyama's method without reflection, in 2-D closed
/// form). `None` when the source points coincide.
pub fn fit(from: &[[f32; 2]], to: &[[f32; 2]]) -> Option<Similarity> {
    let n = from.len().min(to.len());
    if n < 2 {
        return None;
    }
    let mean = |p: &[[f32; 2]]| {
        let (sx, sy) = p[..n]
            .iter()
            .fold((0.0, 0.0), |(sx, sy), q| (sx + q[0], sy + q[1]));
        [sx / n as f32, sy / n as f32]
    };
    let (mf, mt) = (mean(from), mean(to));
    let (mut dot, mut cross, mut norm) = (0.0f32, 0.0f32, 0.0f32);
    for i in 0..n {
        let (fx, fy) = (from[i][0] - mf[0], from[i][1] - mf[1]);
        let (tx, ty) = (to[i][0] - mt[0], to[i][1] - mt[1]);
        dot += fx * tx + fy * ty;
        cross += fx * ty - fy * tx;
        norm += fx * fx + fy * fy;
    }
    if norm < 1e-9 {
        return None;
    }
    let (a, b) = (dot / norm, cross / norm);
    Some(Similarity {
        a,
        b,
        tx: mt[0] - (a * mf[0] - b * mf[1]),
        ty: mt[1] - (b * mf[0] + a * mf[1]),
    })
}

/// The aligned 112×112 RGB crop of the face whose landmarks are `landmarks` (in photo pixels); pixels that fall
/// outside the photo are black. `None` for degenerate landmarks.
pub fn crop(photo: &Photo, landmarks: &[[f32; 2]; 5]) -> Option<Vec<u8>> {
    let to_template = fit(landmarks, &TEMPLATE)?;
    let back = to_template.inverse()?;
    let mut out = vec![0u8; SIDE * SIDE * 3];
    for v in 0..SIDE {
        for u in 0..SIDE {
            let [x, y] = back.apply([u as f32, v as f32]);
            let px = sample(photo, x, y);
            let i = (v * SIDE + u) * 3;
            out[i..i + 3].copy_from_slice(&px);
        }
    }
    Some(out)
}

/// `v.floor()` as an integer, without the library call `floor` is on a CPU baseline without SSE4.1 (a call per
/// sample made alignment cost a millisecond a face). NaN gives 0.
#[inline(always)]
fn floor_to_int(v: f32) -> i64 {
    let t = v as i64;
    if (t as f32) > v {
        t - 1
    } else {
        t
    }
}

/// Bilinear sample at (x, y); black outside the photo.
fn sample(photo: &Photo, x: f32, y: f32) -> [u8; 3] {
    let (w, h) = (photo.width as i64, photo.height as i64);
    let (x0, y0) = (floor_to_int(x), floor_to_int(y));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let blend = |p00: [f32; 3], p10: [f32; 3], p01: [f32; 3], p11: [f32; 3]| {
        let mut out = [0u8; 3];
        for c in 0..3 {
            let top = p00[c] * (1.0 - fx) + p10[c] * fx;
            let bottom = p01[c] * (1.0 - fx) + p11[c] * fx;
            // Rounded half up (the value is not negative), without the library call `round` would be.
            out[c] = ((top * (1.0 - fy) + bottom * fy).clamp(0.0, 255.0) + 0.5) as u8;
        }
        out
    };
    let channels = |p: &[u8]| [p[0] as f32, p[1] as f32, p[2] as f32];
    if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
        // All four neighbours inside: read them straight from the two rows.
        let stride = photo.width as usize * 3;
        let at = y0 as usize * stride + x0 as usize * 3;
        if let (Some(top), Some(bottom)) = (
            photo.rgb.get(at..at + 6),
            photo.rgb.get(at + stride..at + stride + 6),
        ) {
            return blend(
                channels(&top[..3]),
                channels(&top[3..]),
                channels(&bottom[..3]),
                channels(&bottom[3..]),
            );
        }
    }
    let at = |xi: i64, yi: i64| -> [f32; 3] {
        if xi < 0 || yi < 0 || xi >= w || yi >= h {
            return [0.0; 3];
        }
        channels(&photo.pixel(xi as u32, yi as u32))
    };
    blend(
        at(x0, y0),
        at(x0 + 1, y0),
        at(x0, y0 + 1),
        at(x0 + 1, y0 + 1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_similarity_is_recovered_and_inverted() {
        let truth = Similarity {
            a: 0.8 * 0.6f32.cos(),
            b: 0.8 * 0.6f32.sin(),
            tx: 12.0,
            ty: -7.0,
        };
        let from: Vec<[f32; 2]> = TEMPLATE.iter().map(|p| [p[0] * 3.0, p[1] * 2.0]).collect();
        let to: Vec<[f32; 2]> = from.iter().map(|p| truth.apply(*p)).collect();
        let got = fit(&from, &to).expect("fit");
        assert!(
            (got.a - truth.a).abs() < 1e-4 && (got.b - truth.b).abs() < 1e-4,
            "{got:?}"
        );
        assert!((got.tx - truth.tx).abs() < 1e-2 && (got.ty - truth.ty).abs() < 1e-2);
        let inv = got.inverse().expect("inverse");
        let p = inv.apply(got.apply([30.0, 40.0]));
        assert!((p[0] - 30.0).abs() < 1e-3 && (p[1] - 40.0).abs() < 1e-3);
    }

    #[test]
    fn degenerate_landmarks_are_refused() {
        assert_eq!(fit(&[[5.0, 5.0]; 5], &TEMPLATE), None);
        let photo = Photo {
            width: 4,
            height: 4,
            rgb: vec![0; 48],
        };
        assert_eq!(crop(&photo, &[[1.0, 1.0]; 5]), None);
    }

    #[test]
    fn landmarks_on_the_template_crop_the_photo_as_is() {
        // A photo that is itself a 112×112 crop: aligning it to the template is the identity.
        let rgb: Vec<u8> = (0..SIDE * SIDE)
            .flat_map(|i| [(i % 251) as u8, (i / 112) as u8, 7])
            .collect();
        let photo = Photo {
            width: SIDE as u32,
            height: SIDE as u32,
            rgb: rgb.clone(),
        };
        let out = crop(&photo, &TEMPLATE).expect("crop");
        assert_eq!(out, rgb);
    }
}
