//! The controller against simulated links, in steps of 100 ms of simulated time.

use super::*;

const MB: f64 = 1e6;
const MIB: u64 = 1 << 20;
const TICK: f64 = 0.1;

/// A simulated link: `rate(t, n)` bytes/s at time `t` (s) with `n` connections up to speed; a
/// connection reaches speed `ramp` seconds after it is added; `throttled(t)` is the count of
/// requests refused so far.
struct Link<R, T> {
    rate: R,
    ramp: f64,
    throttled: T,
}

fn link(rate: impl Fn(f64, usize) -> f64) -> Link<impl Fn(f64, usize) -> f64, impl Fn(f64) -> u64> {
    Link {
        rate,
        ramp: 0.3,
        throttled: |_| 0,
    }
}

/// Runs the controller for `secs`; returns the count it chose at each tick, `(t, n)`.
fn run<R: Fn(f64, usize) -> f64, T: Fn(f64) -> u64>(
    start: usize,
    max: usize,
    part_bytes: u64,
    secs: f64,
    l: &Link<R, T>,
) -> Vec<(f64, usize)> {
    let t0 = Instant::now();
    let mut c = PartCount::new(start, max, part_bytes, t0);
    let mut fetched = 0.0;
    let mut seen: Vec<(f64, usize)> = vec![(0.0, start)];
    let ticks = (secs / TICK).round() as usize;
    for i in 1..=ticks {
        let t = i as f64 * TICK;
        // Connections added less than `ramp` ago do not count yet.
        let ready = seen
            .iter()
            .rev()
            .find(|(at, _)| *at <= t - l.ramp + 1e-9)
            .map_or(start, |&(_, n)| n);
        let now_n = seen.last().unwrap().1;
        fetched += (l.rate)(t, ready.min(now_n)) * TICK;
        let n = c.observe(
            fetched as u64,
            (l.throttled)(t),
            t0 + Duration::from_secs_f64(t),
        );
        seen.push((t, n));
    }
    seen
}

fn at(seen: &[(f64, usize)], t: f64) -> usize {
    seen.iter().rev().find(|(s, _)| *s <= t + 1e-9).unwrap().1
}

/// Share of the time spent at `n`, after `from` seconds.
fn share(seen: &[(f64, usize)], n: usize, from: f64) -> f64 {
    let after: Vec<_> = seen.iter().filter(|(t, _)| *t >= from).collect();
    after.iter().filter(|(_, x)| *x == n).count() as f64 / after.len() as f64
}

#[test]
fn grows_by_doubling_while_connections_pay() {
    // 10 MB/s per connection, nothing else: 16 → 32 → 64 within seconds, and it stays.
    let seen = run(16, 64, 8 * MIB, 30.0, &link(|_, n| n as f64 * 10.0 * MB));
    // The first window and the settle are half long while doubling: 32 at 0.3 s, 64 at 1.1 s.
    assert_eq!(at(&seen, 0.2), 16, "{seen:?}");
    assert_eq!(at(&seen, 0.5), 32, "a doubling, not a small step: {seen:?}");
    assert_eq!(at(&seen, 1.2), 64, "{seen:?}");
    assert!(seen.iter().all(|&(_, n)| n <= 64), "{seen:?}");
    assert_eq!(share(&seen, 64, 3.0), 1.0, "{seen:?}");
}

#[test]
fn holds_where_more_connections_do_not_pay() {
    // The link tops out at 240 MB/s (24 connections' worth): the doubling to 32 pays (1.5×),
    // the one to 64 does not; it settles at 32, trying a quarter more now and then, less and
    // less often.
    let seen = run(
        16,
        64,
        8 * MIB,
        120.0,
        &link(|_, n| (n as f64 * 10.0 * MB).min(240.0 * MB)),
    );
    assert!(share(&seen, 32, 5.0) > 0.9, "{seen:?}");
    assert!(share(&seen, 40, 60.0) < 0.05, "tries too often: {seen:?}");
    assert!(seen.iter().all(|&(_, n)| n <= 64), "{seen:?}");
    // Flat (raw loopback, a disk-bound file): one doubling tried, undone, back to the start.
    let seen = run(16, 64, 8 * MIB, 120.0, &link(|_, _| 900.0 * MB));
    assert!(share(&seen, 16, 0.0) > 0.9, "{seen:?}");
    assert_eq!(seen.last().unwrap().1, 16, "{seen:?}");
    // More connections are slower (a disk that seeks): back to where it was too.
    let seen = run(
        16,
        64,
        8 * MIB,
        60.0,
        &link(|_, n| if n > 16 { 200.0 } else { 300.0 } * MB),
    );
    assert!(share(&seen, 16, 0.0) > 0.85, "{seen:?}");
    assert_eq!(seen.last().unwrap().1, 16, "{seen:?}");
}

#[test]
fn backs_off_when_the_source_throttles() {
    // Every connection would pay, but the source answers 503 SlowDown (or drops connections)
    // once at 5 s: the count halves at once and grows again only by small, spaced steps.
    let l = Link {
        rate: |_: f64, n: usize| n as f64 * 10.0 * MB,
        ramp: 0.3,
        throttled: |t: f64| u64::from(t >= 5.0),
    };
    let seen = run(16, 64, 8 * MIB, 20.0, &l);
    assert_eq!(at(&seen, 4.9), 64, "{seen:?}");
    assert_eq!(at(&seen, 5.0), 32, "halved at the first refusal: {seen:?}");
    assert_eq!(at(&seen, 6.9), 32, "no step before the wait: {seen:?}");
    assert!(at(&seen, 9.0) < 64, "small steps, not a doubling: {seen:?}");
    // Refused again and again: halved once per window (the requests in flight at a halving
    // are refused too; they are not a new answer), so down to one in seconds, not at once.
    let l = Link {
        rate: |_: f64, n: usize| n as f64 * 10.0 * MB,
        ramp: 0.3,
        throttled: |t: f64| (t * 10.0) as u64,
    };
    let seen = run(16, 64, 8 * MIB, 3.0, &l);
    assert_eq!(at(&seen, 0.3), 8, "{seen:?}");
    assert_eq!(at(&seen, 0.7), 4, "{seen:?}");
    assert_eq!(seen.last().unwrap().1, 1, "{seen:?}");
    // A burst of 16 refusals at once (one SlowDown answered to every part in flight): one
    // halving, not four.
    let l = Link {
        rate: |_: f64, n: usize| n as f64 * 10.0 * MB,
        ramp: 0.3,
        throttled: |t: f64| if t >= 5.0 { 16 } else { 0 } + if t >= 5.2 { 16 } else { 0 },
    };
    let seen = run(16, 64, 8 * MIB, 6.0, &l);
    assert_eq!(at(&seen, 5.3), 32, "{seen:?}");
}

#[test]
fn a_window_that_fetched_nothing_is_no_baseline() {
    // Nothing arrives for the first 2 s (every part waits for the host's connections), then a
    // link where more connections do not pay: no step is "paid" by an empty window (without
    // the guard, 16 → 32 → 64 on windows of nothing).
    let seen = run(
        16,
        64,
        8 * MIB,
        6.0,
        &link(|t, _| if t < 2.05 { 0.0 } else { 200.0 * MB }),
    );
    assert!(seen.iter().all(|(_, n)| *n <= 32), "{seen:?}");
}

#[test]
fn the_last_small_step_to_the_max_is_judged_by_what_it_adds() {
    // Each connection pays fully; the max is 60 + 4: the last step adds 6.7 %, which must pay
    // about that much, not the 10 % of a quarter step.
    let seen = run(16, 68, 8 * MIB, 30.0, &link(|_, n| n as f64 * 10.0 * MB));
    assert_eq!(seen.last().unwrap().1, 68, "{seen:?}");
}

#[test]
fn a_spoiled_judging_window_is_measured_again() {
    // The window that judges the first doubling (0.6–1.1 s) stalls (a journal sync, the page
    // cache flushing): it is measured again instead of undoing the step and waiting.
    let seen = run(
        16,
        64,
        8 * MIB,
        10.0,
        &link(|t, n| {
            if (0.65..1.15).contains(&t) {
                20.0 * MB
            } else {
                n as f64 * 10.0 * MB
            }
        }),
    );
    assert_eq!(at(&seen, 1.2), 32, "{seen:?}");
    assert_eq!(at(&seen, 3.0), 64, "{seen:?}");
}

#[test]
fn a_slow_link_is_judged_over_a_longer_window() {
    // Large parts on a slow link: a part takes 6.7 s at 10 MB/s, and a new connection needs
    // 1.5 s to deliver (a slow first byte, TCP's slow start at 40 ms). Half-second windows
    // would judge the new connections before they deliver and undo every step.
    let l = Link {
        rate: |_: f64, n: usize| n as f64 * 10.0 * MB,
        ramp: 1.5,
        throttled: |_: f64| 0,
    };
    let seen = run(16, 64, 64 * MIB, 40.0, &l);
    assert_eq!(at(&seen, 30.0), 64, "{seen:?}");
}

#[test]
fn a_fixed_count_never_moves() {
    let l = link(|_, n| n as f64 * 50.0 * MB);
    assert!(run(8, 8, 8 * MIB, 20.0, &l).iter().all(|&(_, n)| n == 8));
    assert!(run(1, 1, 8 * MIB, 20.0, &l).iter().all(|&(_, n)| n == 1));
    // A ceiling below the start: the start, fixed.
    assert!(run(48, 32, 8 * MIB, 20.0, &l).iter().all(|&(_, n)| n == 48));
    // Fixed even when the source throttles (the caller chose the count).
    let l = Link {
        rate: |_: f64, n: usize| n as f64 * 10.0 * MB,
        ramp: 0.3,
        throttled: |t: f64| (t * 10.0) as u64,
    };
    assert!(run(16, 16, 8 * MIB, 5.0, &l).iter().all(|&(_, n)| n == 16));
}
