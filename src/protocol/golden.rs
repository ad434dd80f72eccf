//! Golden bytes: what the protocol codecs write for every message × version × direction, kept
//! in `tests/golden/messages.txt` so that a rewrite of the codecs (issue #14: messages declared
//! once, generated) can be held to the bytes the hand-written codecs wrote.
//!
//! Each line is `Message request|response vN #i HEX<TAB>DEBUG`: the body bytes the codec wrote
//! at version N for corpus value i, and the value it decoded them to. The corpus is drawn from
//! each type's proptest strategy with a fixed seed per message. The test reads the file and
//! checks, for every line, that the codec decodes the bytes to the recorded value, with nothing
//! left over, and writes the same bytes again.
//!
//! ```text
//! KPROD_GOLDEN=write cargo test --lib protocol::golden   # rewrite the file from the codecs
//! ```

use std::fmt::Write as _;

use proptest::arbitrary::Arbitrary;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::codec::Reader;
use super::messages::api_versions::ApiVersionsRequest;
use super::messages::create_topics::CreateTopicsRequest;
use super::messages::fetch::FetchRequest;
use super::messages::init_producer_id::InitProducerIdRequest;
use super::messages::list_offsets::ListOffsetsRequest;
use super::messages::metadata::MetadataRequest;
use super::messages::produce::ProduceRequest;
use super::messages::{Request, Response};

/// Values per message and direction.
const CORPUS: usize = 4;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/messages.txt");

/// The same values on every machine and every run: a seed from the message's name.
fn corpus<T: Arbitrary>(name: &str) -> Vec<T> {
    let mut seed = [0u8; 32];
    for (i, b) in name.bytes().enumerate() {
        seed[i % 32] ^= b.wrapping_mul(31).wrapping_add(i as u8);
    }
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed),
    );
    (0..CORPUS)
        .map(|_| {
            proptest::prelude::any::<T>()
                .new_tree(&mut runner)
                .expect("a value")
                .current()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One message's lines, written by today's codecs.
fn write_lines<R>(name: &str, out: &mut Vec<String>)
where
    R: Request + Arbitrary,
    R::Response: Arbitrary,
{
    for (i, m) in corpus::<R>(&format!("{name} request")).iter().enumerate() {
        for v in R::versions() {
            let mut b = Vec::new();
            m.encode(v, &mut b);
            let back = R::decode(&mut Reader::new(&b), v).expect("decodes");
            out.push(format!("{name} request v{v} #{i} {}\t{back:?}", hex(&b)));
        }
    }
    for (i, m) in corpus::<R::Response>(&format!("{name} response"))
        .iter()
        .enumerate()
    {
        for v in R::versions() {
            let mut b = Vec::new();
            m.encode(v, &mut b);
            let back = R::Response::decode(&mut Reader::new(&b), v).expect("decodes");
            out.push(format!("{name} response v{v} #{i} {}\t{back:?}", hex(&b)));
        }
    }
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
    assert_eq!(format!("{v:?}"), debug, "{line}: decoded to another value");
    let mut again = Vec::new();
    enc(&v, version, &mut again);
    assert_eq!(again, bytes, "{line}: written again differently");
}

macro_rules! messages {
    ($($name:literal => $req:ty),* $(,)?) => {
        fn all_lines() -> Vec<String> {
            let mut out = Vec::new();
            $(write_lines::<$req>($name, &mut out);)*
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

messages! {
    "ApiVersions" => ApiVersionsRequest,
    "Metadata" => MetadataRequest,
    "Produce" => ProduceRequest,
    "InitProducerId" => InitProducerIdRequest,
    "CreateTopics" => CreateTopicsRequest,
    "ListOffsets" => ListOffsetsRequest,
    "Fetch" => FetchRequest,
}

#[test]
fn golden_bytes_decode_and_encode_again() {
    if std::env::var("KPROD_GOLDEN").as_deref() == Ok("write") {
        let mut text = all_lines().join("\n");
        text.push('\n');
        std::fs::write(FILE, text).expect("writing the golden file");
    }
    let text = std::fs::read_to_string(FILE).expect("tests/golden/messages.txt");
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        check(line);
        n += 1;
    }
    // Every message, both directions, every version, the whole corpus.
    assert_eq!(
        n,
        all_lines().len(),
        "the file lacks lines the codecs write"
    );
}

/// While the hand-written codecs are the ones in use, the file is exactly what they write from
/// the corpus (so it cannot drift from them unnoticed).
#[test]
fn golden_file_is_what_the_codecs_write() {
    let text = std::fs::read_to_string(FILE).expect("tests/golden/messages.txt");
    let want: Vec<String> = all_lines();
    let got: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, w.as_str());
    }
}
