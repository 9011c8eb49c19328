//! The harness example as a program: `test-harness ws://127.0.0.1:3000/ws SECRET` checks a
//! running agentwire server and exits 1 if anything it checks does not hold.

use std::process::ExitCode;

use agentwire_examples::harness;

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(secret)) = (args.next(), args.next()) else {
        eprintln!("usage: test-harness WS_URL HMAC_SECRET");
        return ExitCode::from(2);
    };
    match harness::check(&url, &secret).await {
        Ok(report) => {
            println!("{report:#?}");
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("test-harness: {error}");
            ExitCode::FAILURE
        }
    }
}
