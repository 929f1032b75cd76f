//! A photo from outside, decoded safely. Every photo Jarvis looks at arrives from someone who may lie: a name
//! ending in `.jpg` on a text file, a header that claims 20000×20000 pixels over a few kilobytes (a decompression
//! bomb), a file cut short, a CMYK or grayscale JPEG, a phone picture stored sideways with an EXIF orientation. So:
//! the byte size is checked first; the format is read from the content, never the name, and only JPEG and PNG are
//! taken; the dimensions come from the header and are checked (zero, too wide, too many pixels) before decoding;
//! the decoder itself runs under an allocation limit; the EXIF orientation is applied; the result is always 8-bit
//! RGB. Errors say which of these it was, for the person who sent the photo.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// What a photo may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhotoLimits {
    /// Bytes of the encoded file.
    pub max_bytes: usize,
    /// Pixels on the longer side.
    pub max_side: u32,
    /// Pixels in all (width × height).
    pub max_pixels: u64,
}

impl Default for PhotoLimits {
    /// A phone's full-size photo passes (48 MP at 8000×6000 does not: 40 MP is the cap), a camera snapshot easily.
    fn default() -> Self {
        PhotoLimits {
            max_bytes: 20 * 1024 * 1024,
            max_side: 10_000,
            max_pixels: 40_000_000,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhotoError {
    #[error("the photo is {bytes} bytes; at most {max} are taken")]
    TooLarge { bytes: usize, max: usize },
    #[error("this is not a JPEG or PNG image")]
    NotAnImage,
    #[error("{0} images are not taken: send a JPEG or PNG")]
    Unsupported(String),
    #[error("the image says it is {width}×{height} pixels: {why}")]
    Dimensions {
        width: u32,
        height: u32,
        why: String,
    },
    #[error("the image is damaged or cut short: {0}")]
    Corrupt(String),
}

/// A decoded photo: 8-bit RGB, rows top to bottom, upright (EXIF orientation applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Photo {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes.
    pub rgb: Vec<u8>,
}

impl Photo {
    /// The pixel at (x, y) as [r, g, b].
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y as usize) * (self.width as usize) + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// Decodes `bytes` as a JPEG or PNG within `limits`.
pub fn decode(bytes: &[u8], limits: &PhotoLimits) -> Result<Photo, PhotoError> {
    if bytes.len() > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            bytes: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let format = image::guess_format(bytes).map_err(|_| PhotoError::NotAnImage)?;
    if !matches!(format, ImageFormat::Jpeg | ImageFormat::Png) {
        return Err(PhotoError::Unsupported(
            format!("{format:?}").to_uppercase(),
        ));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(PhotoError::Corrupt(
            "the JPEG stops before the end of its image data".into(),
        ));
    }
    // The header alone first, so a bomb is named with the size it claims.
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(header_error)?;
    check_dimensions(width, height, limits)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    // Room for the pixels at 4 bytes each (CMYK), twice (a conversion), and the decoder's own tables.
    decoder_limits.max_alloc = Some(limits.max_pixels * 8 + 64 * 1024 * 1024);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(header_error)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| PhotoError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);
    let rgb = image.into_rgb8();
    Ok(Photo {
        width: rgb.width(),
        height: rgb.height(),
        rgb: rgb.into_raw(),
    })
}

/// Whether a JPEG has its end-of-image marker after its last scan (decoders fill a file cut short with grey
/// rather than fail). An EXIF thumbnail's own markers come before the main image's scans, and a marker byte
/// inside the compressed data is always escaped, so neither can fool this.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last = |marker: u8| bytes.windows(2).rposition(|w| w == [0xFF, marker]);
    match (last(0xDA), last(0xD9)) {
        (Some(scan), Some(end)) => end > scan,
        _ => false,
    }
}

fn check_dimensions(width: u32, height: u32, limits: &PhotoLimits) -> Result<(), PhotoError> {
    let why = if width == 0 || height == 0 {
        Some("an image has at least one pixel".to_string())
    } else if width.max(height) > limits.max_side {
        Some(format!(
            "at most {} pixels on a side are taken",
            limits.max_side
        ))
    } else if u64::from(width) * u64::from(height) > limits.max_pixels {
        Some(format!(
            "at most {} megapixels are taken",
            limits.max_pixels / 1_000_000
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(PhotoError::Dimensions { width, height, why }),
        None => Ok(()),
    }
}

/// An error while reading the header: the limits the decoder enforced itself are reported as dimensions.
fn header_error(e: image::ImageError) -> PhotoError {
    match e {
        image::ImageError::Limits(l) => PhotoError::Dimensions {
            width: 0,
            height: 0,
            why: l.to_string(),
        },
        image::ImageError::Unsupported(u) => PhotoError::Unsupported(u.to_string()),
        other => PhotoError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 200]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
            .expect("png");
        out
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        // Left half red, right half blue: orientation is visible in the result.
        let img = RgbImage::from_fn(width, height, |x, _| {
            if x < width / 2 {
                image::Rgb([250, 0, 0])
            } else {
                image::Rgb([0, 0, 250])
            }
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
            .write_image(img.as_raw(), width, height, image::ExtendedColorType::Rgb8)
            .expect("jpeg");
        out
    }

    /// A PNG whose header claims `width`×`height` over one tiny (empty) data chunk: a decompression bomb's shape.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            out.extend_from_slice(&crc_input);
            out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(
            &mut out,
            b"IDAT",
            &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
        );
        chunk(&mut out, b"IEND", &[]);
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xedb8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A JPEG with an EXIF APP1 segment saying `orientation` (1..=8), inserted after SOI.
    fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes());
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xff, 0xe1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn jpeg_and_png_decode_to_rgb() {
        let p = decode(&png(40, 30), &PhotoLimits::default()).expect("png");
        assert_eq!((p.width, p.height, p.rgb.len()), (40, 30, 40 * 30 * 3));
        assert_eq!(p.pixel(5, 7), [5, 7, 200]);
        let j = decode(&jpeg(64, 32), &PhotoLimits::default()).expect("jpeg");
        assert_eq!((j.width, j.height), (64, 32));
        assert!(j.pixel(2, 16)[0] > 200 && j.pixel(60, 16)[2] > 200);
    }

    #[test]
    fn exif_orientation_is_applied() {
        // 6: the camera was turned; the picture is shown rotated 90° clockwise.
        let p = decode(&with_orientation(&jpeg(64, 32), 6), &PhotoLimits::default()).expect("jpeg");
        assert_eq!((p.width, p.height), (32, 64), "upright");
        // The left (red) half is now on top.
        assert!(p.pixel(16, 4)[0] > 200, "{:?}", p.pixel(16, 4));
        assert!(p.pixel(16, 60)[2] > 200, "{:?}", p.pixel(16, 60));
    }

    #[test]
    fn grayscale_and_cmyk_jpegs_become_rgb() {
        let gray = image::GrayImage::from_fn(20, 10, |x, _| image::Luma([x as u8 * 10]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95)
            .write_image(gray.as_raw(), 20, 10, image::ExtendedColorType::L8)
            .expect("gray jpeg");
        let p = decode(&bytes, &PhotoLimits::default()).expect("gray");
        assert_eq!(p.rgb.len(), 20 * 10 * 3);
        let [r, g, b] = p.pixel(15, 5);
        assert!(r == g && g == b, "gray stays gray");
        // A CMYK JPEG (Adobe), as print workflows and some scanners save them: a red-to-blue gradient.
        let cmyk = include_bytes!("../../tests/data/photos/cmyk.jpg");
        let p = decode(cmyk, &PhotoLimits::default()).expect("cmyk");
        assert_eq!((p.width, p.height), (24, 16));
        let top = p.pixel(12, 0);
        let bottom = p.pixel(12, 15);
        assert!(
            top[0] > top[2] && bottom[2] > bottom[0],
            "{top:?} {bottom:?}"
        );
    }

    #[test]
    fn lies_and_damage_get_a_clear_error() {
        let limits = PhotoLimits::default();
        // A text file named .jpg, empty bytes, another format.
        assert_eq!(
            decode(b"hello, I am a photo", &limits),
            Err(PhotoError::NotAnImage)
        );
        assert_eq!(decode(b"", &limits), Err(PhotoError::NotAnImage));
        assert!(matches!(
            decode(b"GIF89a\x01\x00\x01\x00", &limits),
            Err(PhotoError::Unsupported(_))
        ));
        // Cut short, and bytes flipped in the middle.
        let j = jpeg(64, 64);
        assert!(matches!(
            decode(&j[..j.len() / 2], &limits),
            Err(PhotoError::Corrupt(_))
        ));
        // Cut inside the image data (a decoder would fill the rest with grey), and whole with a trailer after
        // its end, as some cameras write.
        assert!(matches!(
            decode(&j[..j.len() - 10], &limits),
            Err(PhotoError::Corrupt(m)) if m.contains("stops before")
        ));
        let mut trailer = j.clone();
        trailer.extend_from_slice(b"camera maker's trailer");
        assert!(decode(&trailer, &limits).is_ok());
        // A header that claims 20000x20000 is named with the size it claims.
        assert!(matches!(
            decode(&png_header_only(20_000, 20_000), &limits),
            Err(PhotoError::Dimensions {
                width: 20_000,
                height: 20_000,
                ..
            })
        ));
        let p = png(64, 64);
        let mut flipped = p.clone();
        let mid = flipped.len() / 2;
        for b in &mut flipped[mid..mid + 16] {
            *b ^= 0xff;
        }
        assert!(matches!(
            decode(&flipped, &limits),
            Err(PhotoError::Corrupt(_))
        ));
        assert!(matches!(
            decode(&p[..p.len() - 20], &limits),
            Err(PhotoError::Corrupt(_))
        ));
        // Only the magic bytes.
        assert!(decode(&j[..4], &limits).is_err());
    }

    #[test]
    fn dimensions_are_checked_from_the_header_before_decoding() {
        let limits = PhotoLimits::default();
        for (w, h) in [
            (0, 0),
            (0, 10),
            (20_000, 20_000),
            (10_001, 10),
            (8_000, 6_000),
        ] {
            match decode(&png_header_only(w, h), &limits) {
                Err(PhotoError::Dimensions { .. }) => {}
                // The PNG decoder refuses a zero side itself, in the header, and says so.
                Err(PhotoError::Corrupt(m)) if (w == 0 || h == 0) && m.contains("dimensions") => {}
                other => panic!("{w}x{h}: {other:?}"),
            }
        }
        // 1×1 is an image (it has no face, which is for the face engine to say).
        let p = decode(&png(1, 1), &limits).expect("1x1");
        assert_eq!((p.width, p.height), (1, 1));
        // A real bomb: 9000×4500 of zeros compresses to a few tens of kilobytes; refused by its header.
        let small = PhotoLimits {
            max_pixels: 1_000_000,
            ..limits
        };
        let bomb = png(1200, 1000);
        assert!(matches!(
            decode(&bomb, &small),
            Err(PhotoError::Dimensions { .. })
        ));
        // Too many bytes is refused before anything is parsed.
        let tiny = PhotoLimits {
            max_bytes: 100,
            ..limits
        };
        assert_eq!(
            decode(&png(64, 64), &tiny).map(|_| ()),
            Err(PhotoError::TooLarge {
                bytes: png(64, 64).len(),
                max: 100
            })
        );
    }
}
