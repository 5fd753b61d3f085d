//! The machine's RS256 signing limit: how many access tokens per second all
//! cores together can sign with the library the server signs with (aws-lc-rs,
//! RSA-2048 PKCS#1 v1.5 with SHA-256). A refresh signs one token, so this is the
//! ceiling of refresh throughput.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde::Serialize;

use crate::monitor::{cpu_of, thread_cpu_ns, typical_cpu_ns};
use crate::stats::{round1, round3};

#[derive(Debug, Clone, Serialize)]
pub struct Rs256Report {
    pub cores: usize,
    pub threads: usize,
    /// Median wall time of one signature with nothing else signing, microseconds.
    pub single_sign_us: f64,
    /// Median wall time of one signature while every thread signs, microseconds.
    pub parallel_sign_us: f64,
    /// CPU time of one signature, alone (the median of each one's own) and with
    /// every thread signing (the threads' CPU time ÷ the signatures): what a
    /// signature costs whatever else runs on the machine. The limit and the
    /// one-core rate are computed from them (from the wall times where CPU time
    /// cannot be read).
    pub single_cpu_sign_us: f64,
    pub parallel_cpu_sign_us: f64,
    pub signatures: u64,
    pub elapsed_s: f64,
    pub measured_sps: f64,
    /// threads ÷ parallel CPU time of a signature (signatures per second).
    pub limit_sps: f64,
    /// One core's rate: 1 ÷ the CPU time of a signature alone.
    pub per_core_sps: f64,
}

/// A signing input the size of the server's access tokens' (header.claims).
fn signing_input() -> Vec<u8> {
    let header = "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik5uQ2t6Z0VwQ2Q2RjNGOW5fQ3dQQUciLCJ0eXAiOiJKV1QifQ";
    let claims = "x".repeat(420);
    format!("{header}.{claims}").into_bytes()
}

fn sign_once(
    key: &RsaKeyPair,
    rng: &SystemRandom,
    msg: &[u8],
    sig: &mut [u8],
) -> Result<Duration, String> {
    let t0 = Instant::now();
    key.sign(&RSA_PKCS1_SHA256, rng, msg, sig)
        .map_err(|_| "RS256 signing failed".to_owned())?;
    Ok(t0.elapsed())
}

fn median_us(v: &mut [Duration]) -> f64 {
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// Signs alone for a moment, then on `threads` threads (default: one per core) for
/// `duration` or `max` signatures.
pub fn measure_rs256(
    duration: Duration,
    threads: Option<usize>,
    max: u64,
) -> Result<Rs256Report, String> {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or(cores).max(1);
    let key =
        Arc::new(RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| "cannot generate an RSA key")?);
    let msg = Arc::new(signing_input());
    let rng = SystemRandom::new();
    let mut sig = vec![0u8; key.public_modulus_len()];
    sign_once(&key, &rng, &msg, &mut sig)?;
    let mut alone = Vec::new();
    let mut alone_cpu = Vec::new();
    let until = Instant::now() + Duration::from_millis(300);
    while alone.len() < 20 || (Instant::now() < until && alone.len() < 2000) {
        let (wall, cpu) = cpu_of(|| sign_once(&key, &rng, &msg, &mut sig));
        alone.push(wall?);
        alone_cpu.extend(cpu);
    }
    let single_cpu_ns = typical_cpu_ns(&mut alone_cpu);
    let single_sign_us = median_us(&mut alone);

    let budget = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (key, msg, budget, barrier) = (
            Arc::clone(&key),
            Arc::clone(&msg),
            Arc::clone(&budget),
            Arc::clone(&barrier),
        );
        handles.push(thread::spawn(
            move || -> Result<(Vec<Duration>, Option<u64>), String> {
                let rng = SystemRandom::new();
                let mut sig = vec![0u8; key.public_modulus_len()];
                barrier.wait();
                let deadline = Instant::now() + duration;
                let mut times = Vec::new();
                let cpu0 = thread_cpu_ns();
                while Instant::now() < deadline && budget.fetch_add(1, Ordering::Relaxed) < max {
                    times.push(sign_once(&key, &rng, &msg, &mut sig)?);
                }
                let cpu = match (cpu0, thread_cpu_ns()) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                    _ => None,
                };
                Ok((times, cpu))
            },
        ));
    }
    barrier.wait();
    let started = Instant::now();
    let mut all = Vec::new();
    let mut cpu_total: Option<u64> = Some(0);
    for h in handles {
        let (times, cpu) = h
            .join()
            .map_err(|_| "a signing thread panicked".to_owned())??;
        all.extend(times);
        cpu_total = cpu_total.zip(cpu).map(|(a, b)| a + b);
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    if all.is_empty() {
        return Err("no signature completed".into());
    }
    let signatures = all.len() as u64;
    let parallel_sign_us = median_us(&mut all);
    let parallel_cpu_sign_us =
        cpu_total.map_or(parallel_sign_us, |ns| ns as f64 / signatures as f64 / 1e3);
    let single_cpu_sign_us = single_cpu_ns.map_or(single_sign_us, |ns| ns / 1e3);
    Ok(Rs256Report {
        cores,
        threads,
        single_sign_us: round3(single_sign_us),
        parallel_sign_us: round3(parallel_sign_us),
        single_cpu_sign_us: round3(single_cpu_sign_us),
        parallel_cpu_sign_us: round3(parallel_cpu_sign_us),
        signatures,
        elapsed_s: round3(elapsed),
        measured_sps: round1(signatures as f64 / elapsed),
        limit_sps: round1(threads as f64 / (parallel_cpu_sign_us.max(1e-6) / 1e6)),
        per_core_sps: round1(1e6 / single_cpu_sign_us.max(1e-6)),
    })
}

impl Rs256Report {
    pub fn print_human(&self) {
        println!(
            "RS256 (aws-lc-rs, RSA-2048)  ({} cores, {} signing threads)",
            self.cores, self.threads
        );
        println!(
            "  one signature alone              {:.1} µs CPU ({:.1} µs wall; {:.0}/s on one core)",
            self.single_cpu_sign_us, self.single_sign_us, self.per_core_sps
        );
        println!(
            "  one signature, all threads busy  {:.1} µs CPU ({:.1} µs wall)",
            self.parallel_cpu_sign_us, self.parallel_sign_us
        );
        println!(
            "  measured  {} signatures in {:.2} s = {:.0}/s",
            self.signatures, self.elapsed_s, self.measured_sps
        );
        println!(
            "  limit = {} threads / {:.1} µs = {:.0} signatures/s",
            self.threads, self.parallel_cpu_sign_us, self.limit_sps
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn signing_is_measured_and_bounded() {
        let r = measure_rs256(Duration::from_millis(100), Some(2), 40).unwrap();
        assert!(r.signatures >= 1 && r.signatures <= 40, "{}", r.signatures);
        assert!(r.limit_sps > 0.0 && r.per_core_sps > 0.0);
        assert_eq!(r.threads, 2);
    }
}
