//! The simulated cameras' pictures: a 1280×720 frame of a front door or a side path (flat shapes, no text), with
//! a visitor's photo standing in it where the zone puts them. Frames are drawn when asked for (snapshots,
//! thumbnails, a camera's latest frame) and encoded as JPEG; the photos are the registry's test faces.

use std::path::Path;

use image::{imageops, Rgb, RgbImage};

pub const WIDTH: u32 = 1280;
pub const HEIGHT: u32 = 720;

/// The empty scene of a camera.
pub fn background(camera: &str) -> RgbImage {
    let mut img = RgbImage::new(WIDTH, HEIGHT);
    let (sky, ground, accent): ([u8; 3], [u8; 3], [u8; 3]) = if camera.contains("side") {
        ([118, 140, 120], [86, 98, 78], [150, 150, 140])
    } else {
        ([120, 130, 150], [92, 88, 84], [110, 70, 50])
    };
    for (x, y, p) in img.enumerate_pixels_mut() {
        let base = if y < HEIGHT * 3 / 5 { sky } else { ground };
        let shade = (y * 30 / HEIGHT) as u8;
        *p = Rgb([
            base[0].saturating_sub(shade),
            base[1].saturating_sub(shade),
            base[2].saturating_sub(shade) ^ (((x / 160) as u8 & 1) * 4),
        ]);
    }
    // A door (or a gate): where people come and go.
    for y in 120..HEIGHT * 3 / 5 {
        for x in 880..1060 {
            img.put_pixel(x, y, Rgb(accent));
        }
    }
    img
}

/// Where a visitor stands: the zone they are in decides how near (and how large) they are.
fn placement(zone: Option<&str>) -> (u32, u32, u32) {
    match zone {
        // Near the door: large.
        Some("porch") | Some("path") => (560, 140, 420),
        // Further out: still large enough for a face to be found.
        Some(_) => (240, 200, 360),
        None => (400, 180, 380),
    }
}

/// The frame with `photo` (a file in `photos`) standing in `zone`; the empty scene if the photo cannot be read.
pub fn frame(camera: &str, photos: &Path, photo: Option<&str>, zone: Option<&str>) -> RgbImage {
    let mut img = background(camera);
    let Some(name) = photo else {
        return img;
    };
    let Ok(visitor) = image::open(photos.join(name)) else {
        return img;
    };
    let visitor = visitor.to_rgb8();
    let (x, y, h) = placement(zone);
    let w = (h * visitor.width() / visitor.height().max(1)).clamp(1, WIDTH - x);
    let scaled = imageops::resize(&visitor, w, h, imageops::FilterType::Triangle);
    imageops::overlay(&mut img, &scaled, i64::from(x), i64::from(y));
    img
}

/// A cut of `img` around the visitor (Frigate's cropped snapshot), or the whole frame when nobody is there.
pub fn crop(img: &RgbImage, zone: Option<&str>) -> RgbImage {
    let (x, y, h) = placement(zone);
    let (cx, cy) = (x.saturating_sub(40), y.saturating_sub(40));
    let (cw, ch) = ((h + 80).min(WIDTH - cx), (h + 80).min(HEIGHT - cy));
    imageops::crop_imm(img, cx, cy, cw, ch).to_image()
}

/// JPEG at quality 80, scaled to `height` if given.
pub fn jpeg(img: &RgbImage, height: Option<u32>) -> Vec<u8> {
    let scaled;
    let img = match height {
        Some(h) if h > 0 && h < img.height() => {
            let w = (img.width() * h / img.height()).max(1);
            scaled = imageops::resize(img, w, h, imageops::FilterType::Triangle);
            &scaled
        }
        _ => img,
    };
    let mut out = Vec::new();
    let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80);
    if enc.encode_image(img).is_err() {
        out.clear();
    }
    out
}
