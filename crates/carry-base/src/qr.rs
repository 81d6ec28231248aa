//! QR codes of the codes and links a person shows another device or person: share
//! links, the recovery code, a move's pairing code.

use crate::error::{Error, Result};

/// A QR code as a square of modules, for an app to draw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrMatrix {
    /// The QR version (1-40).
    pub version: u8,
    /// Modules per side (without the quiet zone).
    pub width: u32,
    /// Row by row, `true` for a dark module.
    pub modules: Vec<bool>,
}

/// The QR code of `text` in byte mode at error-correction level M, at the smallest
/// version that holds it.
pub fn qr(text: &str) -> Result<QrMatrix> {
    use qrcode::bits::Bits;
    use qrcode::{EcLevel, QrCode, Version};
    for v in 1..=40i16 {
        let mut bits = Bits::new(Version::Normal(v));
        if bits.push_byte_data(text.as_bytes()).is_err()
            || bits.push_terminator(EcLevel::M).is_err()
        {
            continue;
        }
        let code = QrCode::with_bits(bits, EcLevel::M)
            .map_err(|e| Error::internal(format!("QR encoding: {e:?}")))?;
        let width = code.width();
        let modules = code
            .to_colors()
            .into_iter()
            .map(|c| c == qrcode::Color::Dark)
            .collect();
        return Ok(QrMatrix {
            version: v as u8,
            width: width as u32,
            modules,
        });
    }
    Err(Error::invalid("the text is too long for a QR code"))
}
