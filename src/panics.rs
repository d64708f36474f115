//! Panics turned into answers: a future whose panic comes back as a value, so an adapter can
//! still answer the person waiting, and the one line, free of secrets, that describes a panic.
//! Depends on `tokens` (redaction) and `shown` only.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

/// The longest panic description logged or printed.
const MAX_DESCRIPTION: usize = 300;

/// A panic caught while answering someone. Its text is one line with raw tokens redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked(pub String);

/// `f`'s output, or what it panicked with. Whatever `f` shared may be left half-updated, so a
/// caller only answers with an error and changes nothing more.
pub async fn catching<F: Future>(f: F) -> Result<F::Output, Panicked> {
    AssertUnwindSafe(f)
        .catch_unwind()
        .await
        .map_err(|payload| Panicked(describe(payload.as_ref())))
}

/// A panic's message as one line: raw tokens redacted, control characters escaped, shortened.
/// Payloads other than text (`panic_any`) are not shown.
pub fn describe(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message");
    let redacted = crate::tokens::redact(text);
    crate::shown::shown(&redacted)
        .chars()
        .take(MAX_DESCRIPTION)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explode(with: String) -> u8 {
        panic!("{with}")
    }

    #[tokio::test]
    async fn a_panicking_future_comes_back_as_one_line_without_its_secret() {
        let secret = format!("apiv3_{}", "s3cr3t".repeat(10));
        let caught = catching(async { explode(format!("bad\nstate near {secret}")) })
            .await
            .unwrap_err();
        assert_eq!(caught.0, "bad\\nstate near apiv3_<redacted>");
        assert_eq!(catching(async { 7 }).await, Ok(7));
    }

    #[test]
    fn payloads_that_are_not_text_are_not_shown() {
        let payload: Box<dyn Any + Send> = Box::new(42_u32);
        assert_eq!(describe(payload.as_ref()), "a panic without a message");
        let long: Box<dyn Any + Send> = Box::new("x".repeat(1000));
        assert_eq!(describe(long.as_ref()).len(), MAX_DESCRIPTION);
    }
}
