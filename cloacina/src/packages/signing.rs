//! Signed packages (ADR 0015): an Ed25519 signature over an archive's exact bytes, kept beside it
//! in `<archive>.sig`, and the check a server makes before it opens an upload.
//!
//! - A signing key is a file holding `cloacina-signing-key-v1 <64 hex digits>` (the 32-byte
//!   seed), written with mode 0600; its public key is `cloacina-public-key-v1 <64 hex digits>`.
//! - A signature file is one JSON document: `{"version": 1, "algorithm": "ed25519",
//!   "public_key": hex, "signature": hex}`. It names its key, so a server trusting several keys
//!   checks the one it names; a key it does not trust is refused before the signature is even
//!   checked.
//!
//! Nothing here reads a clock or a database; secrets (the seed) never reach an error or `Debug`.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::Error;

const PRIVATE_TAG: &str = "cloacina-signing-key-v1";
const PUBLIC_TAG: &str = "cloacina-public-key-v1";

/// A public key that signatures are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// Reads a public key file's text (`cloacina-public-key-v1 <hex>`).
    pub fn parse(text: &str) -> Result<PublicKey, Error> {
        let bad = || Error::Signature(format!("not a public key: expected `{PUBLIC_TAG} <64 hex digits>`"));
        let hex = text.trim().strip_prefix(PUBLIC_TAG).ok_or_else(bad)?.trim();
        let bytes: [u8; 32] = decode_hex(hex).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| bad())
    }

    /// The key as its file holds it.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG} {}\n", encode_hex(self.0.as_bytes()))
    }

    /// Its first 16 hex digits, for people and messages.
    pub fn fingerprint(&self) -> String {
        encode_hex(&self.0.as_bytes()[..8])
    }
}

/// A new signing key: the private key file's text and its public key.
pub fn generate() -> Result<(String, PublicKey), Error> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::Signature(format!("no randomness for a new key: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok((format!("{PRIVATE_TAG} {}\n", encode_hex(&key.to_bytes())), PublicKey(key.verifying_key())))
}

/// The signature file's document.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    version: u32,
    algorithm: String,
    public_key: String,
    signature: String,
}

/// Signs `archive` with the private key file's text; the signature file's text.
pub fn sign(private_key: &str, archive: &[u8]) -> Result<String, Error> {
    let bad = || Error::Signature(format!("not a signing key: expected `{PRIVATE_TAG} <64 hex digits>`"));
    let hex = private_key.trim().strip_prefix(PRIVATE_TAG).ok_or_else(bad)?.trim();
    let seed: [u8; 32] = decode_hex(hex).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let key = SigningKey::from_bytes(&seed);
    let file = SignatureFile {
        version: 1,
        algorithm: "ed25519".to_owned(),
        public_key: encode_hex(key.verifying_key().as_bytes()),
        signature: encode_hex(&key.sign(archive).to_bytes()),
    };
    serde_json::to_string(&file).map_err(|e| Error::Signature(e.to_string()))
}

/// The public key a signature file names (to say who signed), if it is readable.
pub fn signer(signature: &str) -> Result<PublicKey, Error> {
    let file = read_signature(signature)?;
    let bytes: [u8; 32] = decode_hex(&file.public_key)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Signature("the signature's public_key is not 64 hex digits".to_owned()))?;
    VerifyingKey::from_bytes(&bytes)
        .map(PublicKey)
        .map_err(|_| Error::Signature("the signature's public_key is not an Ed25519 key".to_owned()))
}

fn read_signature(text: &str) -> Result<SignatureFile, Error> {
    let file: SignatureFile = serde_json::from_str(text.trim())
        .map_err(|e| Error::Signature(format!("the signature is not a Cloacina signature document: {e}")))?;
    if file.version != 1 || file.algorithm != "ed25519" {
        return Err(Error::Signature(format!(
            "signature version {} with algorithm `{}`: this host reads version 1, ed25519",
            file.version, file.algorithm
        )));
    }
    Ok(file)
}

/// Checks that `signature` (a signature file's text; `None`: the archive came unsigned) is a
/// signature of exactly `archive` by one of `trusted`. Runs before anything in the archive is
/// read.
pub fn verify(archive: &[u8], signature: Option<&str>, trusted: &[PublicKey]) -> Result<PublicKey, Error> {
    let Some(signature) = signature else {
        return Err(Error::Signature(
            "the package is unsigned, and this server accepts only signed packages: sign it with \
             `cloacinactl package pack --sign KEY` and upload it with its .sig"
                .to_owned(),
        ));
    };
    let file = read_signature(signature)?;
    let key = signer(signature)?;
    if !trusted.contains(&key) {
        return Err(Error::Signature(format!(
            "the package is signed by key {}, which this server does not trust",
            key.fingerprint()
        )));
    }
    let bytes: [u8; 64] = decode_hex(&file.signature)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Signature("the signature is not 128 hex digits".to_owned()))?;
    key.0.verify(archive, &Signature::from_bytes(&bytes)).map_err(|_| {
        Error::Signature(format!(
            "the signature by key {} does not match the archive: it was changed after it was signed",
            key.fingerprint()
        ))
    })?;
    Ok(key)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_archive_verifies_and_every_bad_case_is_refused_with_its_reason() {
        let (private, public) = generate().unwrap();
        let (_, stranger) = generate().unwrap();
        let archive = b"BZh9 an archive's bytes".to_vec();
        let signature = sign(&private, &archive).unwrap();
        assert_eq!(verify(&archive, Some(&signature), &[stranger.clone(), public.clone()]).unwrap(), public);
        assert_eq!(PublicKey::parse(&public.to_text()).unwrap(), public);

        let refused = |archive: &[u8], signature: Option<&str>, trusted: &[PublicKey]| {
            verify(archive, signature, trusted).unwrap_err().to_string()
        };
        let mut tampered = archive.clone();
        tampered[5] ^= 1;
        assert!(
            refused(&tampered, Some(&signature), std::slice::from_ref(&public)).contains("changed after it was signed")
        );
        assert!(refused(&archive, Some(&signature), std::slice::from_ref(&stranger)).contains("does not trust"));
        assert!(refused(&archive, None, std::slice::from_ref(&public)).contains("unsigned"));
        assert!(refused(&archive, Some("{\"version\": 1}"), std::slice::from_ref(&public))
            .contains("not a Cloacina signature"));
        let forged = signature.replace(&encode_hex(public.0.as_bytes()), &encode_hex(stranger.0.as_bytes()));
        assert!(refused(&archive, Some(&forged), std::slice::from_ref(&stranger)).contains("does not match"));
        assert!(sign("cloacina-signing-key-v1 zz", &archive).unwrap_err().to_string().contains("not a signing key"));
        // The seed never shows: not in errors, not in Debug.
        let seed = private.trim().rsplit(' ').next().unwrap();
        assert!(!format!("{public:?}").contains(seed) && !signature.contains(seed));
    }
}
