//! How long an upstream link waits before its next attempt: doubling from a quarter second
//! to a ceiling, so a dead upstream costs a connect every few seconds, not a storm, and a
//! brief outage is over quickly.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(250);
const CEILING: Duration = Duration::from_secs(5);

/// The wait after `failures` failed attempts in a row (1 for the first failure).
pub(crate) fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST.saturating_mul(1 << doublings).min(CEILING)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling() {
        let ms: Vec<u128> = (0..9).map(|f| delay(f).as_millis()).collect();
        assert_eq!(ms, [250, 250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert_eq!(delay(u32::MAX), CEILING);
    }
}
