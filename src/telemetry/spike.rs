//! Per-route spike detection for 401/403: a pure detector core, ticked with completed counts.
//!
//! Per request the proxy only increments an atomic counter (`RouteStats::count_denial`); the
//! background tick reads the delta, keeps the last `window` ticks, and compares their sum with
//! an adaptive baseline:
//!
//! - the baseline is an EWMA of the per-tick count and of its variance (time constant
//!   `baseline_secs`, 5 minutes by default), learning fast during warm-up and barely during a
//!   spike so that a spike does not teach itself to be normal;
//! - the test is quasi-Poisson: with expected count `λ = baseline × window` and dispersion
//!   `d = max(1, variance / mean)`, the window's count `N` is anomalous when the Poisson upper
//!   tail `P(X ≥ N/d | λ/d)` is below `p_value`, and `N ≥ min_count`, and `N ≥ min_ratio × λ`;
//! - a route with no history has a small floor rate, so a sudden burst is a spike at once;
//! - a spike stays on while the window stays anomalous and clears after `cooldown` calm ticks.

use std::collections::VecDeque;

/// Detector tuning; the defaults meet the targets shown in the tests.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Ticks in the comparison window (`spike.window / spike.tick`).
    pub window: usize,
    /// Seconds per tick.
    pub tick_secs: f64,
    /// EWMA time constant of the baseline, in seconds.
    pub baseline_secs: f64,
    /// Fewest denials in the window that can be a spike.
    pub min_count: u64,
    /// The window must hold at least this many times the expected count.
    pub min_ratio: f64,
    /// Poisson upper-tail probability below which the window is anomalous.
    pub p_value: f64,
    /// Rate (per second) assumed for a route with no history.
    pub floor_rate: f64,
    /// Calm ticks before a spike clears.
    pub cooldown: u32,
    /// Ticks of cumulative-average learning for a new series.
    pub warmup: u32,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            window: 10,
            tick_secs: 1.0,
            baseline_secs: 300.0,
            min_count: 10,
            min_ratio: 2.0,
            p_value: 1e-7,
            floor_rate: 0.02,
            cooldown: 30,
            warmup: 30,
        }
    }
}

/// What one tick decided for one series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    /// Denials per second over the window.
    pub rate: f64,
    /// The baseline per second.
    pub baseline: f64,
    /// How far the window stands above the baseline, in (quasi-Poisson) standard deviations.
    pub score: f64,
    pub active: bool,
    /// True on the tick a spike starts.
    pub started: bool,
    /// True on the tick a spike clears.
    pub cleared: bool,
}

/// The detector state of one (route, status) series.
#[derive(Debug, Clone)]
pub struct Series {
    counts: VecDeque<u64>,
    sum: u64,
    mean: f64,
    var: f64,
    learned: u32,
    active: bool,
    calm: u32,
}

impl Series {
    /// A series seen while the detector itself starts: nothing is known of its past, so its
    /// baseline learns fast (a cumulative average) for the first `warmup` ticks.
    pub fn new(t: &Tuning) -> Self {
        Series {
            counts: VecDeque::with_capacity(t.window),
            sum: 0,
            mean: 0.0,
            var: 0.0,
            learned: 0,
            active: false,
            calm: 0,
        }
    }

    /// A series that first appears after the detector has been running: its past is known to
    /// be zero denials, so its baseline starts at zero and learns at the normal pace. A burst
    /// on a brand-new route is then a spike even when it ramps up over several ticks.
    pub fn with_zero_history(t: &Tuning) -> Self {
        Series {
            learned: t.warmup,
            ..Series::new(t)
        }
    }

    pub fn active(&self) -> bool {
        self.active
    }

    /// Feeds the count of one completed tick. `may_alarm` is false during the detector's own
    /// start-up, when no history is known yet.
    pub fn tick(&mut self, count: u64, t: &Tuning, may_alarm: bool) -> Tick {
        self.counts.push_back(count);
        self.sum += count;
        // `while`: a reload may shorten the window.
        while self.counts.len() > t.window {
            self.sum -= self.counts.pop_front().unwrap_or(0);
        }
        let filled = self.counts.len() as f64;
        let floor = t.floor_rate * t.tick_secs;
        let expected = self.mean.max(floor) * filled;
        let dispersion = if self.mean > 0.0 {
            (self.var / self.mean).max(1.0)
        } else {
            1.0
        };
        let n = self.sum as f64;
        let anomalous = self.sum >= t.min_count
            && n >= t.min_ratio * expected
            && poisson_log_tail(n / dispersion, expected / dispersion) < t.p_value.ln();
        let score = (n - expected) / (expected * dispersion).sqrt().max(1e-9);

        let mut started = false;
        let mut cleared = false;
        if self.active {
            if anomalous {
                self.calm = 0;
            } else {
                self.calm += 1;
                if self.calm >= t.cooldown {
                    self.active = false;
                    cleared = true;
                }
            }
        } else if anomalous && may_alarm {
            self.active = true;
            self.calm = 0;
            started = true;
        }

        // Learn the baseline from this tick's count: fast while new, barely during a spike.
        let tau_ticks = (t.baseline_secs / t.tick_secs).max(1.0);
        let mut alpha = 1.0 - (-1.0 / tau_ticks).exp();
        if self.learned < t.warmup {
            alpha = alpha.max(1.0 / f64::from(self.learned + 1));
        }
        if self.active {
            alpha /= 20.0;
        }
        let c = count as f64;
        let diff = c - self.mean;
        self.mean += alpha * diff;
        self.var = (1.0 - alpha) * (self.var + alpha * diff * diff);
        self.learned = self.learned.saturating_add(1);

        Tick {
            rate: n / (filled * t.tick_secs),
            baseline: self.mean / t.tick_secs,
            score,
            active: self.active,
            started,
            cleared,
        }
    }

    /// Ticks learned so far and the baseline per tick, for /debug/authz.
    pub fn learning(&self) -> (u32, f64) {
        (self.learned, self.mean)
    }
}

/// `ln P(X ≥ n)` for `X ~ Poisson(lambda)`, for real `n` (rounded up) and `lambda > 0`.
/// At or below the mean it returns 0 (probability 1): such a count is never anomalous.
pub fn poisson_log_tail(n: f64, lambda: f64) -> f64 {
    let n = n.ceil();
    if n <= 0.0 || n <= lambda {
        return 0.0;
    }
    let lambda = lambda.max(1e-12);
    // log pmf(n), then the sum of the decreasing terms pmf(k) for k >= n.
    let log_pmf = n * lambda.ln() - lambda - ln_factorial(n);
    let mut term = 1.0f64;
    let mut total = 1.0f64;
    let mut k = n;
    for _ in 0..10_000 {
        k += 1.0;
        term *= lambda / k;
        total += term;
        if term < total * 1e-12 {
            break;
        }
    }
    log_pmf + total.ln()
}

/// `ln(n!)` by Stirling's series (exact enough for the tail test above).
fn ln_factorial(n: f64) -> f64 {
    if n < 2.0 {
        return 0.0;
    }
    if n < 20.0 {
        return (2..=n as u64).map(|k| (k as f64).ln()).sum();
    }
    let x = n + 1.0;
    (x - 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x * x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic Poisson sampler (Knuth for small means, normal approximation above).
    struct Rng(u64);
    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn poisson(&mut self, mean: f64) -> u64 {
            if mean > 60.0 {
                let u1 = self.uniform().max(1e-300);
                let u2 = self.uniform();
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                return (mean + z * mean.sqrt()).round().max(0.0) as u64;
            }
            let l = (-mean).exp();
            let (mut k, mut p) = (0u64, 1.0);
            loop {
                p *= self.uniform();
                if p <= l {
                    return k;
                }
                k += 1;
            }
        }
    }

    fn run(series: &mut Series, t: &Tuning, rng: &mut Rng, rate: f64, ticks: usize) -> Vec<Tick> {
        (0..ticks)
            .map(|_| series.tick(rng.poisson(rate * t.tick_secs), t, true))
            .collect()
    }

    #[test]
    fn poisson_tail_matches_known_values() {
        // P(X >= 20 | 10) = 0.003454...
        assert!((poisson_log_tail(20.0, 10.0).exp() - 0.003454).abs() < 2e-5);
        // P(X >= 3 | 1) = 1 - e^-1 (1 + 1 + 1/2) = 0.0803
        assert!((poisson_log_tail(3.0, 1.0).exp() - 0.0803).abs() < 1e-3);
        // P(X >= 60 | 20) = 4.23328e-13 (far tail, Stirling branch; exact sum by Python)
        let far = poisson_log_tail(60.0, 20.0).exp();
        assert!((far / 4.23328e-13 - 1.0).abs() < 1e-5, "{far}");
        // At or below the mean the window is never anomalous: taken as probability 1.
        assert_eq!(poisson_log_tail(5.0, 10.0), 0.0);
    }

    #[test]
    fn a_tenfold_step_at_one_per_second_is_flagged_within_ten_seconds() {
        let t = Tuning::default();
        for seed in 1..=20 {
            let mut rng = Rng(0x9E37_79B9 + seed);
            let mut s = Series::new(&t);
            run(&mut s, &t, &mut rng, 1.0, 600);
            assert!(!s.active(), "seed {seed}: alarm before the step");
            let after = run(&mut s, &t, &mut rng, 10.0, 10);
            let at = after.iter().position(|x| x.started);
            assert!(at.is_some(), "seed {seed}: step not flagged within 10 s");
        }
    }

    #[test]
    fn a_new_route_going_to_twenty_per_second_is_flagged_within_five_seconds() {
        let t = Tuning::default();
        for seed in 1..=20 {
            let mut rng = Rng(0xABCD + seed);
            let mut s = Series::new(&t);
            // Quiet for a minute (the route exists but sees no denials), then 20/s.
            run(&mut s, &t, &mut rng, 0.0, 60);
            let after = run(&mut s, &t, &mut rng, 20.0, 5);
            assert!(
                after.iter().any(|x| x.started),
                "seed {seed}: not flagged within 5 s"
            );
        }
    }

    #[test]
    fn steady_poisson_traffic_gives_at_most_one_false_alarm_per_hour() {
        let t = Tuning::default();
        for (i, rate) in [0.05, 0.3, 1.0, 3.0, 10.0, 50.0, 300.0]
            .into_iter()
            .enumerate()
        {
            let mut rng = Rng(0x1234_5678 + i as u64);
            let mut s = Series::new(&t);
            run(&mut s, &t, &mut rng, rate, 600); // settle
            let alarms = run(&mut s, &t, &mut rng, rate, 3600)
                .iter()
                .filter(|x| x.started)
                .count();
            assert!(
                alarms <= 1,
                "rate {rate}/s: {alarms} false alarms in an hour"
            );
        }
    }

    #[test]
    fn a_new_route_ramping_up_mid_tick_is_still_flagged() {
        let t = Tuning::default();
        for seed in 1..=20 {
            let mut rng = Rng(0xFACE + seed);
            // The route first appears after the detector warmed up, in the middle of a tick.
            let mut s = Series::with_zero_history(&t);
            let mut ticks = vec![s.tick(3, &t, true)];
            ticks.extend(run(&mut s, &t, &mut rng, 20.0, 4));
            assert!(
                ticks.iter().any(|x| x.started),
                "seed {seed}: not flagged within 5 s"
            );
        }
    }

    #[test]
    fn a_spike_stays_on_while_it_lasts_then_clears_after_the_cooldown() {
        let t = Tuning::default();
        let mut rng = Rng(77);
        let mut s = Series::new(&t);
        run(&mut s, &t, &mut rng, 1.0, 600);
        let during = run(&mut s, &t, &mut rng, 20.0, 120);
        let first = during.iter().position(|x| x.active).expect("flagged");
        assert!(
            during[first..].iter().all(|x| x.active),
            "flapped during the spike"
        );
        assert_eq!(during.iter().filter(|x| x.started).count(), 1);
        let after = run(&mut s, &t, &mut rng, 1.0, 120);
        let cleared = after.iter().position(|x| x.cleared).expect("cleared");
        // The window drains in `window` ticks, then `cooldown` calm ticks.
        assert!(
            cleared >= t.cooldown as usize,
            "cleared too early: {cleared}"
        );
        assert!(
            cleared <= (t.cooldown as usize + t.window + 5),
            "cleared late: {cleared}"
        );
        assert!(!after.last().expect("ticks").active);
    }

    #[test]
    fn low_traffic_noise_never_reaches_the_minimum_count() {
        let t = Tuning::default();
        let mut s = Series::new(&t);
        // 9 denials in one tick on a silent route: under min_count, no alarm.
        for _ in 0..60 {
            s.tick(0, &t, true);
        }
        assert!(!s.tick(9, &t, true).active);
    }

    #[test]
    fn no_alarm_while_the_detector_warms_up() {
        let t = Tuning::default();
        let mut s = Series::new(&t);
        assert!(!s.tick(100, &t, false).active);
        assert!(!s.tick(100, &t, false).active);
    }
}
