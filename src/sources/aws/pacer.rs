//! Keeps one run's requests to a region under Secrets Manager's request-rate quota.
//!
//! BatchGetSecretValue allows 100 requests per second per region and account, shared with
//! every other job of the account. A run starts at most [`RATE`] requests in any one-second
//! window (a sliding window, so bursts cannot add up to more), leaving room for the SDK's
//! retries and for other jobs; the few requests a normal run needs all start at once.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// First attempts started per second and region, at most.
pub(super) const RATE: usize = 80;
const WINDOW: Duration = Duration::from_secs(1);

/// A sliding-window limiter of request starts.
#[derive(Debug)]
pub(super) struct Pacer {
    rate: usize,
    starts: Mutex<VecDeque<Instant>>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new(RATE)
    }
}

impl Pacer {
    pub(super) fn new(rate: usize) -> Pacer {
        Pacer {
            rate: rate.max(1),
            starts: Mutex::new(VecDeque::with_capacity(rate)),
        }
    }

    /// Waits until one more request may start, and counts it.
    pub(super) async fn wait(&self) {
        loop {
            let wake = {
                let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while starts
                    .front()
                    .is_some_and(|&t| now.duration_since(t) >= WINDOW)
                {
                    starts.pop_front();
                }
                if starts.len() < self.rate {
                    starts.push_back(now);
                    return;
                }
                starts[0] + WINDOW
            };
            tokio::time::sleep_until(wake).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_more_than_the_rate_start_in_any_window() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let pacer = Pacer::new(5);
            let start = Instant::now();
            let mut times = Vec::new();
            for _ in 0..12 {
                pacer.wait().await;
                times.push(start.elapsed());
            }
            // 5 at once, 5 a second later, 2 a second after that.
            assert!(times[..5].iter().all(|t| *t < Duration::from_millis(1)));
            assert!(times[5..10].iter().all(|t| *t >= WINDOW && *t < WINDOW * 2));
            assert!(times[10..].iter().all(|t| *t >= WINDOW * 2));
        });
    }
}
