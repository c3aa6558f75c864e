//! `provenance.intoto.jsonl`: an in-toto Statement v1 with a SLSA Provenance v1 predicate
//! about the artifacts, wrapped in a DSSE envelope signed with the release key (Ed25519).
//!
//! Formats: in-toto Statement v1 (`https://in-toto.io/Statement/v1`), SLSA provenance v1
//! (`https://slsa.dev/provenance/v1`), DSSE v1 (signature over the PAE, not the JSON) —
//! release-and-iso.md §2.4. The key id in the envelope is the minisign key id, so one
//! `minisign.pub` checks both.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keys::{KeyId, ReleaseKey, TrustedKeys};
use super::manifest::{FileEntry, ReleaseInputs};

/// DSSE payload type for in-toto statements.
pub(crate) const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The SLSA build type this tool emits.
pub(crate) const BUILD_TYPE: &str = "https://xsc.example/xsc-release/release/v1";

/// A DSSE envelope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    /// [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// Base64 of the statement JSON.
    pub payload: String,
    /// Signatures over the PAE.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EnvelopeSignature {
    /// minisign key id (16 hex digits).
    pub keyid: String,
    /// Base64 Ed25519 signature over the PAE.
    pub sig: String,
}

/// DSSE pre-authentication encoding: `DSSEv1 <len type> <type> <len body> <body>`.
pub(crate) fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The statement for `artifacts`, built from the same inputs as the manifest.
pub(crate) fn statement(
    inputs: &ReleaseInputs,
    artifacts: &[FileEntry],
    created: &str,
    release_name: &str,
) -> Value {
    let subject: Vec<Value> = artifacts
        .iter()
        .map(|a| json!({ "name": a.name, "digest": { "sha256": a.sha256 } }))
        .collect();
    let mut deps: Vec<Value> =
        vec![json!({ "name": "source", "digest": { "gitCommit": inputs.commit } })];
    deps.extend(inputs.inputs.iter().map(|i| {
        let mut dep = json!({ "name": i.name, "digest": { "sha256": i.sha256 }, "annotations": { "kind": i.kind } });
        if let Some(uri) = &i.uri {
            dep["uri"] = json!(uri);
        }
        dep
    }));
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "version": inputs.version,
                    "commit": inputs.commit,
                    "profile": inputs.profile,
                    "sources": inputs.sources,
                },
                "internalParameters": {
                    "SOURCE_DATE_EPOCH": inputs.source_date_epoch,
                    "toolchain": inputs.toolchain,
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": { "id": builder_id(inputs) },
                "metadata": { "invocationId": release_name, "finishedOn": created },
            },
        },
    })
}

/// The builder id recorded in provenance and manifest.
pub(crate) fn builder_id(inputs: &ReleaseInputs) -> String {
    inputs
        .builder_id
        .clone()
        .unwrap_or_else(|| format!("xsc-release/{}", env!("CARGO_PKG_VERSION")))
}

/// Signs `statement` into one JSONL line (with the final newline).
pub(crate) fn envelope(statement: &Value, key: &ReleaseKey) -> String {
    let body = serde_json::to_vec(statement).expect("statement serialises");
    let sig = key.sign_raw(&pae(PAYLOAD_TYPE, &body));
    let env = Envelope {
        payload_type: PAYLOAD_TYPE.into(),
        payload: B64.encode(&body),
        signatures: vec![EnvelopeSignature {
            keyid: key.id().to_string(),
            sig: B64.encode(sig),
        }],
    };
    let mut line = serde_json::to_string(&env).expect("envelope serialises");
    line.push('\n');
    line
}

/// Why an envelope does not check out.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OpenError {
    /// Every signature is by a key that is not trusted.
    #[error("signed only by untrusted key(s) {0}")]
    Untrusted(String),
    /// Malformed, or a signature does not verify.
    #[error("{0}")]
    Invalid(String),
}

/// Checks an envelope: at least one signature by a trusted key verifies over the PAE.
/// Returns the statement and the key that signed it.
pub(crate) fn open(text: &str, trusted: &TrustedKeys) -> Result<(Value, KeyId), OpenError> {
    open_inner(text, trusted).map_err(|(untrusted, msg)| {
        if untrusted {
            OpenError::Untrusted(msg)
        } else {
            OpenError::Invalid(msg)
        }
    })
}

fn open_inner(text: &str, trusted: &TrustedKeys) -> Result<(Value, KeyId), (bool, String)> {
    let invalid = |m: String| (false, m);
    let line = text.trim_end_matches('\n');
    if line.contains('\n') {
        return Err(invalid("more than one envelope".into()));
    }
    let env: Envelope =
        serde_json::from_str(line).map_err(|e| invalid(format!("not a DSSE envelope: {e}")))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(invalid(format!("payload type is {:?}", env.payload_type)));
    }
    let body = B64
        .decode(&env.payload)
        .map_err(|_| invalid("payload is not base64".into()))?;
    let message = pae(&env.payload_type, &body);
    let mut untrusted = Vec::new();
    let mut last = None;
    for s in &env.signatures {
        let Some(key) = s.keyid.parse::<KeyId>().ok().and_then(|id| trusted.get(id)) else {
            untrusted.push(s.keyid.clone());
            continue;
        };
        let sig = B64
            .decode(&s.sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok());
        let Some(sig) = sig else {
            last = Some("signature is malformed".to_string());
            continue;
        };
        if key
            .verifying
            .verify_strict(&message, &Signature::from_bytes(&sig))
            .is_ok()
        {
            let statement = serde_json::from_slice(&body)
                .map_err(|e| invalid(format!("payload is not JSON: {e}")))?;
            return Ok((statement, key.id));
        }
        last = Some(format!("signature by {} does not verify", key.id));
    }
    match last {
        Some(reason) => Err(invalid(reason)),
        None if untrusted.is_empty() => Err(invalid("no signatures".into())),
        None => Err((true, untrusted.join(", "))),
    }
}

/// `(name, sha256)` of every subject of a statement, sorted.
pub(crate) fn subjects(statement: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                s["digest"]["sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::keys::{self, PasswordSource, Protection, load_secret_key};
    use crate::release::manifest::{FileRole, InputDigest, InputKind};

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // DSSE spec, protocol.md test vector.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn envelope_round_trips_and_rejects_tampering_and_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let key = load_secret_key(
            &keys::generate(dir.path(), &Protection::Unencrypted)
                .unwrap()
                .secret,
            &PasswordSource::Prompt,
        )
        .unwrap();
        let other = load_secret_key(
            &keys::generate(dir.path(), &Protection::Unencrypted)
                .unwrap()
                .secret,
            &PasswordSource::Prompt,
        )
        .unwrap();
        let inputs = ReleaseInputs {
            version: "1.2.3".into(),
            commit: "c0ffee".into(),
            inputs: vec![InputDigest {
                kind: InputKind::Deb,
                name: "linux.deb".into(),
                uri: Some("pkg:deb/debian/linux".into()),
                sha256: "ab".repeat(32),
            }],
            ..ReleaseInputs::default()
        };
        let art = FileEntry {
            name: "x.iso".into(),
            role: FileRole::Artifact,
            size: 3,
            sha256: "cd".repeat(32),
        };
        let st = statement(&inputs, &[art], "2026-01-01T00:00:00Z", "1.2.3");
        let line = envelope(&st, &key);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let trusted = TrustedKeys::new(vec![key.trusted()]);
        let (back, id) = open(&line, &trusted).unwrap();
        assert_eq!(id, key.id());
        assert_eq!(
            subjects(&back),
            vec![("x.iso".to_string(), "cd".repeat(32))]
        );
        assert_eq!(
            back["predicate"]["buildDefinition"]["resolvedDependencies"][1]["uri"],
            "pkg:deb/debian/linux"
        );

        let mut env: Envelope = serde_json::from_str(&line).unwrap();
        let mut body = B64.decode(&env.payload).unwrap();
        let pos = body.iter().position(|&b| b == b'x').unwrap();
        body[pos] = b'y';
        env.payload = B64.encode(&body);
        assert!(open(&serde_json::to_string(&env).unwrap(), &trusted).is_err());
        assert!(matches!(
            open(&line, &TrustedKeys::new(vec![other.trusted()])),
            Err(OpenError::Untrusted(_))
        ));
    }
}
