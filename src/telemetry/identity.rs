//! User, session and token context, kept only as keyed hashes (HMAC-SHA256, 16 hex characters).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The secret behind every identity hash (`AUTHZ_EDGE_HASH_KEY`).
#[derive(Clone)]
pub struct HashKey {
    mac: HmacSha256,
    /// True when the key was made at random at start-up.
    pub ephemeral: bool,
}

/// A keyed hash of an identity: 16 hex characters, plus 64 bits for sketches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdHash {
    hex: [u8; 16],
    pub bits: u64,
}

impl IdHash {
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into `hex`.
        std::str::from_utf8(&self.hex).unwrap_or("")
    }
}

impl std::fmt::Display for IdHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HashKey {
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length.
        let mac = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| {
            <HmacSha256 as Mac>::new_from_slice(b"authz-edge").expect("HMAC takes any key length")
        });
        HashKey {
            mac,
            ephemeral: false,
        }
    }

    /// From `AUTHZ_EDGE_HASH_KEY`, or a random key (hashes then change on restart).
    pub fn from_env() -> Self {
        match std::env::var("AUTHZ_EDGE_HASH_KEY") {
            Ok(k) if !k.is_empty() => HashKey::new(k.as_bytes()),
            _ => {
                let secret: [u8; 32] = rand::random();
                let mut k = HashKey::new(&secret);
                k.ephemeral = true;
                k
            }
        }
    }

    /// `HMAC-SHA256(key, kind || 0x00 || value)`, hex, first 16 characters.
    pub fn hash(&self, kind: &str, value: &[u8]) -> IdHash {
        let mut mac = self.mac.clone();
        // The kind keeps a user id "42" and a session "42" apart.
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let out = mac.finalize().into_bytes();
        let mut hex = [0u8; 16];
        // 8 bytes make exactly 16 digits: encoding cannot fail.
        let _ = hex::encode_to_slice(&out[..8], &mut hex);
        let mut bits = [0u8; 8];
        bits.copy_from_slice(&out[8..16]);
        IdHash {
            hex,
            bits: u64::from_be_bytes(bits),
        }
    }
}

/// The value of cookie `name` in a `Cookie` header value, if present.
pub fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|b| *b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|b| *b == b'=')?;
        (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// A credential from `Authorization`.
#[derive(Debug, PartialEq, Eq)]
pub enum Token<'a> {
    /// `Bearer x` or `Token x`: the raw token.
    Opaque(&'a [u8]),
    /// Basic credentials; only their presence matters.
    Basic,
}

/// Parses `Authorization: Bearer|Token|Basic ...`.
pub fn parse_authorization(v: &[u8]) -> Option<Token<'_>> {
    let v = v.trim_ascii();
    let sp = v.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = (&v[..sp], v[sp + 1..].trim_ascii());
    if rest.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"token") {
        Some(Token::Opaque(rest))
    } else if scheme.eq_ignore_ascii_case(b"basic") {
        Some(Token::Basic)
    } else {
        None
    }
}

/// The `sub` claim of a JWT, read without verifying the signature (so: a hint, never trusted).
pub fn jwt_subject_unverified(token: &[u8]) -> Option<String> {
    let mut parts = token.split(|b| *b == b'.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.len() > 8192 {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.strip_suffix(b"=").unwrap_or(payload))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&json).ok()?;
    match v.get("sub")? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_keyed_and_short() {
        let a = HashKey::new(b"k1").hash("user", b"42");
        let b = HashKey::new(b"k2").hash("user", b"42");
        assert_eq!(a.as_str().len(), 16);
        assert_ne!(a, b);
        assert_eq!(a, HashKey::new(b"k1").hash("user", b"42"));
        assert_ne!(a, HashKey::new(b"k1").hash("session", b"42"));
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = b"csrftoken=abc; sessionid=s3cr3t ;other=1";
        assert_eq!(cookie_value(h, "sessionid"), Some(&b"s3cr3t"[..]));
        assert_eq!(cookie_value(h, "session"), None);
    }

    #[test]
    fn authorization_schemes() {
        assert_eq!(
            parse_authorization(b"Bearer abc"),
            Some(Token::Opaque(b"abc"))
        );
        assert_eq!(
            parse_authorization(b"token  abc"),
            Some(Token::Opaque(b"abc"))
        );
        assert_eq!(parse_authorization(b"Basic dXM6cHc="), Some(Token::Basic));
        assert_eq!(parse_authorization(b"Bearer "), None);
    }

    #[test]
    fn jwt_sub_is_read() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"7"}"#);
        let tok = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(jwt_subject_unverified(tok.as_bytes()).as_deref(), Some("7"));
        assert_eq!(jwt_subject_unverified(b"not-a-jwt"), None);
    }
}
