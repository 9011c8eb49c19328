//! Property tests of `ResumeRequest::from_query`: never a panic, whatever the query, and
//! every well-formed request reads back as written.

use agentwire_stream::{MAX_EPOCH_BYTES, ResumeParameter, ResumeQueryError, ResumeRequest};
use proptest::prelude::*;

/// Pieces that make near-valid queries: the names, separators, escapes, signs, digits.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("epoch".to_owned()),
        Just("since".to_owned()),
        Just("=".to_owned()),
        Just("&".to_owned()),
        Just("%".to_owned()),
        Just("%4".to_owned()),
        Just("%41".to_owned()),
        Just("%65".to_owned()),
        Just("%73".to_owned()),
        Just("%FF".to_owned()),
        Just("%00".to_owned()),
        Just("-".to_owned()),
        Just("+".to_owned()),
        Just("_".to_owned()),
        Just("é".to_owned()),
        "[0-9]{1,25}",
        "[A-Za-z0-9_-]{1,70}",
        any::<String>(),
    ]
}

fn check(query: &str) {
    match ResumeRequest::from_query(Some(query)) {
        Ok(Some(request)) => {
            let epoch = request.epoch();
            assert!(!epoch.is_empty() && epoch.len() <= MAX_EPOCH_BYTES);
            assert!(
                epoch
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            );
        }
        Ok(None) => {}
        Err(error) => {
            assert_eq!(error.code(), "invalid_resume_query");
            let message = error.to_string();
            assert!(message.contains(error.parameter().as_str()), "{message}");
        }
    }
}

proptest! {
    #[test]
    fn any_query_is_read_or_refused_never_a_panic(query in any::<String>()) {
        check(&query);
    }

    #[test]
    fn near_valid_queries_are_read_or_refused_never_a_panic(
        pieces in proptest::collection::vec(piece(), 0..12),
    ) {
        check(&pieces.concat());
    }

    #[test]
    fn well_formed_requests_read_back_as_written(
        epoch in "[A-Za-z0-9_-]{1,64}",
        since in any::<u64>(),
        // Other parameters, named so that none is `epoch` or `since`.
        before in "(x[a-z]{0,5}=[a-z0-9%.]{0,8}&){0,3}",
        after in "(&x[a-z]{0,5}=[a-z0-9%.]{0,8}){0,3}",
        since_first in any::<bool>(),
    ) {
        let query = if since_first {
            format!("{before}since={since}&epoch={epoch}{after}")
        } else {
            format!("{before}epoch={epoch}&since={since}{after}")
        };
        let request = ResumeRequest::from_query(Some(&query)).unwrap().unwrap();
        prop_assert_eq!(request.epoch(), epoch.as_str());
        prop_assert_eq!(request.since(), since);
        prop_assert_eq!(request, ResumeRequest::new(epoch, since).unwrap());
    }

    #[test]
    fn a_signed_or_fractional_since_names_since(
        since in "-[0-9]{1,5}|\\+[0-9]{1,5}|[0-9]{1,5}\\.[0-9]{1,3}|[0-9]{0,3}[a-z][0-9]{0,3}",
    ) {
        let query = format!("epoch=ep_1&since={since}");
        let error = ResumeRequest::from_query(Some(&query)).unwrap_err();
        prop_assert_eq!(error.parameter(), ResumeParameter::Since);
        prop_assert_eq!(error, ResumeQueryError::NotANumber { parameter: ResumeParameter::Since });
    }
}
