//! Percentiles and summaries of measured samples.

/// The summary of a set of latency samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The number of samples.
    pub count: usize,
    /// The smallest sample.
    pub min: f64,
    /// The 50th percentile.
    pub median: f64,
    /// The 90th percentile.
    pub p90: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// Summarizes `samples`, or returns `None` when there are none. NaN samples sort last.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            count: sorted.len(),
            min: *sorted.first()?,
            median: percentile(&sorted, 50.0)?,
            p90: percentile(&sorted, 90.0)?,
            p99: percentile(&sorted, 99.0)?,
            max: *sorted.last()?,
        })
    }
}

/// Returns the `p`th percentile (0 to 100) of the ascending `sorted` samples by the
/// nearest-rank method: the smallest sample that at least `p` percent of the samples do not
/// exceed. Returns `None` for no samples or a `p` outside 0 to 100.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.max(1) - 1])
}

/// Returns the median of `samples` (the mean of the two middle ones for an even count), or
/// `None` when there are none.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    if count == 0 {
        return None;
    }
    if count % 2 == 1 {
        Some(sorted[count / 2])
    } else {
        Some((sorted[count / 2 - 1] + sorted[count / 2]) / 2.0)
    }
}

/// Returns the smallest and the largest of `samples`, or `None` when there are none.
pub fn range(samples: &[f64]) -> Option<(f64, f64)> {
    let min = samples.iter().copied().reduce(f64::min)?;
    let max = samples.iter().copied().reduce(f64::max)?;
    Some((min, max))
}

/// Returns `ours / anchor`, or NaN when the anchor is zero.
pub fn ratio(ours: f64, anchor: f64) -> f64 {
    if anchor == 0.0 {
        f64::NAN
    } else {
        ours / anchor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 50.0), Some(50.0));
        assert_eq!(percentile(&sorted, 90.0), Some(90.0));
        assert_eq!(percentile(&sorted, 99.0), Some(99.0));
        assert_eq!(percentile(&sorted, 100.0), Some(100.0));
        assert_eq!(percentile(&sorted, 0.0), Some(1.0));
    }

    #[test]
    fn percentile_small_sets() {
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 90.0), Some(3.0));
        assert_eq!(percentile(&[1.0, 2.0], 50.0), Some(1.0));
    }

    #[test]
    fn percentile_rejects_bad_input() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0], 101.0), None);
        assert_eq!(percentile(&[1.0], -1.0), None);
    }

    #[test]
    fn summary_sorts_unsorted_samples() {
        let samples = [5.0, 1.0, 4.0, 2.0, 3.0];
        let summary = Summary::of(&samples).unwrap();
        assert_eq!(summary.count, 5);
        assert_eq!(summary.min, 1.0);
        assert_eq!(summary.median, 3.0);
        assert_eq!(summary.p90, 5.0);
        assert_eq!(summary.max, 5.0);
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn median_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn range_and_ratio() {
        assert_eq!(range(&[2.0, 9.0, 4.0]), Some((2.0, 9.0)));
        assert_eq!(range(&[]), None);
        assert_eq!(ratio(3.0, 2.0), 1.5);
        assert!(ratio(1.0, 0.0).is_nan());
    }
}
