//! Quality gates: whether a detected face is good enough to be enrolled or learnt from. A face that fails is never
//! added to the gallery, and the reason is said to the person (enrolment) or kept with the sighting. Three gates:
//! size (the face's shorter side in photo pixels), sharpness (the variance of the Laplacian of the aligned crop's
//! luminance: low means blurred) and pose from the five landmarks (turned away: the nose far off the eyes' middle;
//! tilted: the eye line at a steep angle; looking far up or down: the nose too near the eyes' or the mouth's line).

use crate::vision::align;
use crate::vision::faces::Face;

/// The gates' thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualitySettings {
    /// Shorter side of the face box, in photo pixels.
    pub min_face_px: f32,
    /// Variance of the Laplacian of the 112×112 crop's luminance (face part). Provisional: on the three selfies
    /// checked by eye, sharp photos gave 107–239 and the same blurred by a 9-pixel box 17–35.
    pub min_sharpness: f32,
    /// |nose − eyes' middle| / eye distance, horizontally: 0 facing the camera, ~0.5 and more in profile.
    pub max_yaw: f32,
    /// Angle of the eye line, degrees.
    pub max_roll_deg: f32,
    /// Where the nose sits between the eye line (0) and the mouth line (1); outside this range the head is
    /// tipped far up or down.
    pub nose_band: (f32, f32),
}

impl Default for QualitySettings {
    fn default() -> Self {
        QualitySettings {
            min_face_px: 48.0,
            min_sharpness: 40.0,
            max_yaw: 0.35,
            max_roll_deg: 30.0,
            nose_band: (0.2, 0.8),
        }
    }
}

/// Why a face was not good enough; the message is for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityProblem {
    #[error("the face is too small ({} px; at least {min:.0} px)", px.floor())]
    TooSmall { px: f32, min: f32 },
    #[error("the face is blurred (sharpness {sharpness:.0}; at least {min:.0})")]
    Blurred { sharpness: f32, min: f32 },
    #[error("the face is turned away from the camera")]
    TurnedAway,
    #[error("the head is tilted too far ({degrees:.0}°)")]
    Tilted { degrees: f32 },
    #[error("the face looks too far up or down")]
    LooksUpOrDown,
}

/// The first gate `face` fails, given its aligned crop (112×112 RGB from [`align::crop`]).
pub fn check(face: &Face, crop: &[u8], s: &QualitySettings) -> Result<(), QualityProblem> {
    let px = face.bbox[2].min(face.bbox[3]);
    if px < s.min_face_px {
        return Err(QualityProblem::TooSmall {
            px,
            min: s.min_face_px,
        });
    }
    pose(&face.landmarks, s)?;
    let sharpness = sharpness(crop);
    if sharpness < s.min_sharpness {
        return Err(QualityProblem::Blurred {
            sharpness,
            min: s.min_sharpness,
        });
    }
    Ok(())
}

/// The pose gates from the landmarks alone.
pub fn pose(l: &[[f32; 2]; 5], s: &QualitySettings) -> Result<(), QualityProblem> {
    let (eye_r, eye_l, nose, mouth_r, mouth_l) = (l[0], l[1], l[2], l[3], l[4]);
    let (dx, dy) = (eye_l[0] - eye_r[0], eye_l[1] - eye_r[1]);
    let eye_dist = (dx * dx + dy * dy).sqrt();
    if eye_dist < 1.0 {
        return Err(QualityProblem::TurnedAway);
    }
    let degrees = dy.atan2(dx).to_degrees().abs();
    if degrees > s.max_roll_deg {
        return Err(QualityProblem::Tilted { degrees });
    }
    // Measured in the face's own frame (the eye line as the x axis), so a tilt does not count as a turn.
    let (ux, uy) = (dx / eye_dist, dy / eye_dist);
    let eyes_mid = [(eye_r[0] + eye_l[0]) / 2.0, (eye_r[1] + eye_l[1]) / 2.0];
    let mouth_mid = [
        (mouth_r[0] + mouth_l[0]) / 2.0,
        (mouth_r[1] + mouth_l[1]) / 2.0,
    ];
    let along = |p: [f32; 2]| (p[0] - eyes_mid[0]) * ux + (p[1] - eyes_mid[1]) * uy;
    let across = |p: [f32; 2]| -(p[0] - eyes_mid[0]) * uy + (p[1] - eyes_mid[1]) * ux;
    if (along(nose) / eye_dist).abs() > s.max_yaw {
        return Err(QualityProblem::TurnedAway);
    }
    let mouth_down = across(mouth_mid);
    if mouth_down <= 0.0 {
        return Err(QualityProblem::LooksUpOrDown);
    }
    let t = across(nose) / mouth_down;
    if t < s.nose_band.0 || t > s.nose_band.1 {
        return Err(QualityProblem::LooksUpOrDown);
    }
    Ok(())
}

/// The part of the aligned crop that is face (eyes to chin, cheek to cheek): the margins hold background or, where
/// the face was near the photo's edge, black fill whose hard edge would read as sharpness.
const FACE_X: std::ops::Range<usize> = 24..88;
const FACE_Y: std::ops::Range<usize> = 36..104;

/// Variance of the 4-neighbour Laplacian of the crop's luminance, over the face part.
pub fn sharpness(crop: &[u8]) -> f32 {
    let n = align::SIDE;
    if crop.len() < n * n * 3 {
        return 0.0;
    }
    let luma: Vec<f32> = crop
        .chunks_exact(3)
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let (mut sum, mut sum_sq, mut count) = (0f64, 0f64, 0f64);
    for y in FACE_Y {
        for x in FACE_X.clone() {
            let i = y * n + x;
            let lap = luma[i - 1] + luma[i + 1] + luma[i - n] + luma[i + n] - 4.0 * luma[i];
            sum += f64::from(lap);
            sum_sq += f64::from(lap) * f64::from(lap);
            count += 1.0;
        }
    }
    let mean = sum / count;
    (sum_sq / count - mean * mean) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontal(scale: f32) -> Face {
        let l = align::TEMPLATE.map(|[x, y]| [x * scale, y * scale]);
        Face {
            bbox: [0.0, 0.0, 112.0 * scale, 112.0 * scale],
            landmarks: l,
            score: 0.99,
        }
    }

    fn checker(n: usize, cell: usize) -> Vec<u8> {
        (0..n * n)
            .flat_map(|i| {
                let (x, y) = (i % n, i / n);
                let v = if (x / cell + y / cell).is_multiple_of(2) {
                    220
                } else {
                    30
                };
                [v, v, v]
            })
            .collect()
    }

    #[test]
    fn a_frontal_sharp_face_passes_and_each_gate_says_why() {
        let s = QualitySettings::default();
        let sharp = checker(align::SIDE, 4);
        assert_eq!(check(&frontal(1.0), &sharp, &s), Ok(()));
        assert!(matches!(
            check(&frontal(0.3), &sharp, &s),
            Err(QualityProblem::TooSmall { .. })
        ));
        let flat = vec![128u8; align::SIDE * align::SIDE * 3];
        assert!(matches!(
            check(&frontal(1.0), &flat, &s),
            Err(QualityProblem::Blurred { .. })
        ));
        // Turned: the nose moved toward one eye.
        let mut turned = frontal(1.0);
        turned.landmarks[2][0] += 20.0;
        assert_eq!(check(&turned, &sharp, &s), Err(QualityProblem::TurnedAway));
        // Tipped: the nose up at the eye line.
        let mut tipped = frontal(1.0);
        tipped.landmarks[2][1] = 52.0;
        assert_eq!(
            check(&tipped, &sharp, &s),
            Err(QualityProblem::LooksUpOrDown)
        );
    }

    #[test]
    fn a_tilted_head_is_not_taken_for_a_turned_one() {
        let s = QualitySettings::default();
        let rotate = |deg: f32| {
            let (c, sn) = (deg.to_radians().cos(), deg.to_radians().sin());
            align::TEMPLATE.map(|[x, y]| {
                let (x, y) = (x - 56.0, y - 70.0);
                [c * x - sn * y + 56.0, sn * x + c * y + 70.0]
            })
        };
        assert_eq!(
            pose(&rotate(20.0), &s),
            Ok(()),
            "20° is fine, and not a turn"
        );
        assert!(matches!(
            pose(&rotate(40.0), &s),
            Err(QualityProblem::Tilted { .. })
        ));
    }

    #[test]
    fn blur_lowers_sharpness() {
        let sharp = checker(align::SIDE, 2);
        let soft = checker(align::SIDE, 16);
        assert!(sharpness(&sharp) > 10.0 * sharpness(&soft));
        assert_eq!(sharpness(&[]), 0.0);
    }
}
