//! `agentwire_types::json` writes what serde_json writes, into both kinds of output.

use agentwire_types::json::{find_escape, write_escaped, write_i64, write_string, write_u64};
use proptest::prelude::*;

fn string_via_both(s: &str) -> String {
    let mut text = String::from("x");
    write_string(&mut text, s);
    let mut bytes = b"x".to_vec();
    write_string(&mut bytes, s);
    assert_eq!(text.as_bytes(), bytes.as_slice(), "{s:?}");
    text.split_off(1)
}

#[test]
fn strings_escape_like_serde_json() {
    let all_ascii: String = (0u8..=0x7f).map(char::from).collect();
    let samples = [
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}",
        "é ü 日本 🎉",
        "\u{2028}\u{2029}",
        "0123456789abcdef\"0123456789abcdef",
        "0123456789abcdef\\0123456789abcdef\u{1}x",
        "a long clean string of more than eight bytes, twice over, for the fast path",
        &all_ascii,
    ];
    for s in samples {
        assert_eq!(
            string_via_both(s),
            serde_json::to_string(s).unwrap(),
            "{s:?}"
        );
    }
}

#[test]
fn an_escape_at_any_position_of_any_short_length_is_found() {
    for len in 0..=40 {
        for at in 0..len {
            for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '~', '\u{7f}'] {
                let s: String = (0..len)
                    .map(|i| if i == at { special } else { 'a' })
                    .collect();
                assert_eq!(
                    string_via_both(&s),
                    serde_json::to_string(&s).unwrap(),
                    "{s:?}"
                );
                let expected = s.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\');
                assert_eq!(find_escape(s.as_bytes()), expected, "{s:?}");
            }
        }
    }
}

#[test]
fn escaped_pieces_make_one_string() {
    let mut out = String::from("\"");
    write_escaped(&mut out, "a \"b\" ");
    write_escaped(&mut out, "c\\d\n");
    out.push('"');
    assert_eq!(out, serde_json::to_string("a \"b\" c\\d\n").unwrap());
}

#[test]
fn numbers_are_decimal() {
    let mut samples = vec![
        0,
        7,
        9,
        10,
        42,
        99,
        100,
        101,
        4401,
        65_535,
        u64::from(u32::MAX),
    ];
    samples.extend((0..20).map(|p| 10u64.pow(p)));
    samples.extend((1..20).map(|p| 10u64.pow(p) - 1));
    samples.push(u64::MAX);
    for n in samples {
        let mut text = String::new();
        write_u64(&mut text, n);
        assert_eq!(text, serde_json::to_string(&n).unwrap());
        let mut bytes = Vec::new();
        write_u64(&mut bytes, n);
        assert_eq!(bytes, text.as_bytes());
    }
    for n in [0, -1, 1, -9, -10, -100, i64::MIN, i64::MAX, -4401] {
        let mut text = String::new();
        write_i64(&mut text, n);
        assert_eq!(text, serde_json::to_string(&n).unwrap());
    }
}

proptest! {
    #[test]
    fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
        prop_assert_eq!(string_via_both(&s), serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn control_heavy_strings_too(s in "[\\x00-\\x22\\\\a-zé]{0,80}") {
        prop_assert_eq!(string_via_both(&s), serde_json::to_string(&s).unwrap());
        let expected = s.bytes().position(|b| b < 0x20 || b == b'"' || b == b'\\');
        prop_assert_eq!(find_escape(s.as_bytes()), expected);
    }

    #[test]
    fn any_integer_is_written_as_serde_json_writes_it(u in any::<u64>(), i in any::<i64>()) {
        let mut text = String::new();
        write_u64(&mut text, u);
        prop_assert_eq!(&text, &serde_json::to_string(&u).unwrap());
        let mut bytes = Vec::new();
        write_i64(&mut bytes, i);
        prop_assert_eq!(bytes, serde_json::to_vec(&i).unwrap());
    }
}
