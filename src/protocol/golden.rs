//! Golden bytes: what the hand-written protocol codecs wrote for every message × version ×
//! direction, kept in `tests/golden/messages.txt` (captured at f6080bc, before the codecs were
//! generated from specs), so the generated codecs are held to the same bytes.
//!
//! Each line is `Message request|response vN #i HEX<TAB>DEBUG`: the body bytes the codec wrote
//! at version N for corpus value i, and the value it decoded them to. The corpus was drawn from
//! each type's proptest strategy with a fixed seed per message. The test reads the file and
//! checks, for every line, that today's codec decodes the bytes to the recorded value, with
//! nothing left over, and writes the same bytes again; and that the file covers every version
//! of both directions of each message.
//!
//! The file is frozen: it is the hand-written codecs' record and is not regenerated.

use super::codec::Reader;
use super::messages::api_versions::ApiVersionsRequest;
use super::messages::create_topics::CreateTopicsRequest;
use super::messages::fetch::FetchRequest;
use super::messages::init_producer_id::InitProducerIdRequest;
use super::messages::list_offsets::ListOffsetsRequest;
use super::messages::metadata::MetadataRequest;
use super::messages::produce::ProduceRequest;
use super::messages::{Request, Response};

/// Values per message and direction in the file.
const CORPUS: usize = 4;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/messages.txt");

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Checks one line against the codec: decode to the recorded value, nothing left, same bytes.
fn check_line<T>(
    line: &str,
    version: i16,
    bytes: &[u8],
    debug: &str,
    enc: fn(&T, i16, &mut Vec<u8>),
    dec: fn(&mut Reader<'_>, i16) -> Result<T, super::DecodeError>,
) where
    T: std::fmt::Debug,
{
    let mut r = Reader::new(bytes);
    let v = dec(&mut r, version).unwrap_or_else(|e| panic!("{line}: {e}"));
    r.finish("message")
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let mut now = format!("{v:?}");
    if line.starts_with("Metadata response") {
        // v13 added `error_code` as the response's last field; at the file's versions it is
        // absent from the wire, decodes to 0, and the recorded value predates it.
        now = now
            .strip_suffix(", error_code: 0 }")
            .map(|s| format!("{s} }}"))
            .unwrap_or(now);
    }
    assert_eq!(now, debug, "{line}: decoded to another value");
    let mut again = Vec::new();
    enc(&v, version, &mut again);
    assert_eq!(again, bytes, "{line}: written again differently");
}

macro_rules! messages {
    ($($name:literal => $req:ty, $hand:expr;)*) => {
        /// Every `(message, direction, version)` the file must hold `CORPUS` lines of.
        fn expected() -> Vec<(&'static str, &'static str, i16)> {
            let mut out = Vec::new();
            $(
                for v in $hand {
                    out.push(($name, "request", v));
                    out.push(($name, "response", v));
                }
            )*
            out
        }

        fn check(line: &str) {
            let (head, debug) = line.split_once('\t').expect("a tab");
            let f: Vec<&str> = head.split(' ').collect();
            let [name, dir, v, _, hexed] = f[..] else { panic!("{line}: malformed") };
            let v: i16 = v.trim_start_matches('v').parse().expect("version");
            let bytes = unhex(hexed);
            match (name, dir) {
                $(
                    ($name, "request") => check_line::<$req>(
                        line, v, &bytes, debug,
                        |m, v, o| Request::encode(m, v, o),
                        |r, v| <$req as Request>::decode(r, v),
                    ),
                    ($name, "response") => check_line::<<$req as Request>::Response>(
                        line, v, &bytes, debug,
                        |m, v, o| Response::encode(m, v, o),
                        |r, v| <<$req as Request>::Response as Response>::decode(r, v),
                    ),
                )*
                _ => panic!("{line}: unknown message"),
            }
        }
    };
}

// The versions the hand-written codecs implemented (the file's versions); later versions
// are checked by the round-trip tests and against librdkafka, not here.
messages! {
    "ApiVersions" => ApiVersionsRequest, 0..=3;
    "Metadata" => MetadataRequest, 1..=12;
    "Produce" => ProduceRequest, 3..=11;
    "InitProducerId" => InitProducerIdRequest, 0..=4;
    "CreateTopics" => CreateTopicsRequest, 2..=7;
    "ListOffsets" => ListOffsetsRequest, 1..=7;
    "Fetch" => FetchRequest, 4..=12;
}

#[test]
fn golden_bytes_decode_and_encode_again() {
    let text = std::fs::read_to_string(FILE).expect("tests/golden/messages.txt");
    let mut seen = std::collections::BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        check(line);
        let f: Vec<&str> = line.split(' ').take(3).collect();
        *seen
            .entry((f[0].to_owned(), f[1].to_owned(), f[2].to_owned()))
            .or_insert(0) += 1;
    }
    // Every message, both directions, every version, the whole corpus.
    for (name, dir, v) in expected() {
        let n = seen.get(&(name.to_owned(), dir.to_owned(), format!("v{v}")));
        assert_eq!(n, Some(&CORPUS), "{name} {dir} v{v}: lines in the file");
    }
    assert_eq!(
        seen.len(),
        expected().len(),
        "the file has versions the codecs lack"
    );
}
