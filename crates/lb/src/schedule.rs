//! Slot tables: how each scheduler's choice becomes a map from a number
//! the kernel computes per new connection (`numgen` or `jhash`) to a
//! server. Pure functions over weights; indices refer to the caller's list.

/// Most slots a weighted round-robin cycle may have; larger weight sets are
/// scaled down proportionally (each positive weight keeps at least one slot).
pub const MAX_WRR_SLOTS: u32 = 1024;

/// Buckets of the source/destination hash table, as IPVS's `sh`/`dh` use.
pub const HASH_BUCKETS: usize = 256;

/// Size of the Maglev lookup table (a prime, IPVS's `mh` default).
pub const MAGLEV_TABLE_SIZE: usize = 4093;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weights reduced by their common divisor and, when the cycle would be
/// longer than `max_slots`, scaled down so it fits (rounding, at least 1).
pub fn reduced_weights(weights: &[u32], max_slots: u32) -> Vec<u32> {
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return vec![0; weights.len()];
    }
    let mut reduced: Vec<u32> = weights.iter().map(|w| w / g).collect();
    let sum: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if sum > u64::from(max_slots) {
        reduced = reduced
            .iter()
            .map(|&w| {
                if w == 0 {
                    0
                } else {
                    ((u64::from(w) * u64::from(max_slots) / sum) as u32).max(1)
                }
            })
            .collect();
        let g = reduced.iter().copied().filter(|&w| w > 0).fold(0, gcd);
        reduced.iter_mut().for_each(|w| *w /= g);
    }
    reduced
}

/// One weighted round-robin cycle in IPVS's interleaved order (the current
/// weight steps down by the gcd from the maximum; each server whose weight
/// reaches it is picked), so `numgen inc` walks the same sequence as IPVS.
/// Servers of weight 0 never appear. Empty when no weight is positive.
pub fn wrr_cycle(weights: &[u32]) -> Vec<usize> {
    let w = reduced_weights(weights, MAX_WRR_SLOTS);
    let max = w.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return Vec::new();
    }
    let total: u32 = w.iter().sum();
    let mut cycle = Vec::with_capacity(total as usize);
    let mut current = max;
    while cycle.len() < total as usize {
        cycle.extend(
            w.iter()
                .enumerate()
                .filter(|(_, &wi)| wi >= current)
                .map(|(i, _)| i),
        );
        current -= 1;
    }
    cycle
}

/// Plain round robin: every server of positive weight once.
pub fn rr_cycle(weights: &[u32]) -> Vec<usize> {
    (0..weights.len()).filter(|&i| weights[i] > 0).collect()
}

/// Weighted failover (`fo`): the first server of the highest weight.
pub fn failover_target(weights: &[u32]) -> Vec<usize> {
    let max = weights.iter().copied().max().unwrap_or(0);
    if max == 0 {
        return Vec::new();
    }
    weights.iter().position(|&w| w == max).into_iter().collect()
}

/// IPVS's `sh`/`dh` bucket table: [`HASH_BUCKETS`] buckets handed out in
/// turn, each server taking as many consecutive buckets as its (reduced)
/// weight before the next one.
pub fn hash_buckets(weights: &[u32]) -> Vec<usize> {
    let w = reduced_weights(weights, HASH_BUCKETS as u32);
    let turns: Vec<usize> = w
        .iter()
        .enumerate()
        .flat_map(|(i, &wi)| std::iter::repeat_n(i, wi as usize))
        .collect();
    if turns.is_empty() {
        return Vec::new();
    }
    (0..HASH_BUCKETS).map(|b| turns[b % turns.len()]).collect()
}

/// FNV-1a, 64 bits: a stable hash (the same on every director and every
/// build), used for Maglev permutations and server ids.
pub fn fnv1a64(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Maglev lookup table of `size` slots (a prime) for servers named by
/// `names` (stable bytes, e.g. address and port) with `weights`.
///
/// Each server walks its own permutation of the slots (offset and skip
/// from two hashes of its name) and claims the next free slot in turn,
/// `weight` turns per round; so removing a server frees only its slots and
/// the other servers keep theirs (few clients move). Weight 0 claims none.
pub fn maglev_table(names: &[Vec<u8>], weights: &[u32], size: usize) -> Vec<usize> {
    let w = reduced_weights(weights, 64);
    if w.iter().all(|&x| x == 0) || size == 0 {
        return Vec::new();
    }
    let m = size as u64;
    let perm: Vec<(u64, u64)> = names
        .iter()
        .map(|n| {
            let offset = fnv1a64(0x6d61_676c, n) % m;
            let skip = fnv1a64(0x736b_6970, n) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    let mut next = vec![0u64; names.len()];
    let mut table = vec![usize::MAX; size];
    let mut filled = 0;
    'fill: loop {
        for (i, &(offset, skip)) in perm.iter().enumerate() {
            for _ in 0..w[i] {
                let slot = loop {
                    let c = ((offset + next[i] * skip) % m) as usize;
                    next[i] += 1;
                    if table[c] == usize::MAX {
                        break c;
                    }
                };
                table[slot] = i;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
    }
    table
}

/// MurmurHash3's 64-bit finaliser: spreads FNV's last bytes over the high
/// bits, which [`rendezvous_table`] turns into a fraction.
fn mix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Buckets of the persistence hash table (a prime, like Maglev's): the
/// first server of a persistent client under rr/wrr and the lc family.
pub const PERSISTENCE_BUCKETS: usize = 4093;

/// A bucket table by weighted rendezvous (highest random weight) hashing:
/// bucket `b` goes to the server with the highest score
/// `weight / -ln(u)`, where `u` in (0, 1) is a stable hash of the bucket
/// and the server's name.
///
/// A bucket's owner depends only on the names and weights of the servers,
/// not on their order or on any state, so two directors planning the same
/// pool get the same table; a server that leaves frees exactly its own
/// buckets (every other bucket keeps its owner), and one that joins takes
/// buckets only for itself. Servers of weight 0 get none. Empty when no
/// weight is positive.
pub fn rendezvous_table(names: &[Vec<u8>], weights: &[u32], size: usize) -> Vec<usize> {
    if weights.iter().all(|&w| w == 0) {
        return Vec::new();
    }
    (0..size)
        .map(|bucket| {
            let b = (bucket as u32).to_be_bytes();
            let score = |i: usize| {
                let h = mix64(fnv1a64(0x6872_7720, &[&b[..], &names[i]].concat()));
                // 53 bits into (0, 1): never 0 (ln would be -inf), never 1.
                let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                f64::from(weights[i]) / -u.ln()
            };
            (0..names.len())
                .filter(|&i| weights[i] > 0)
                .max_by(|&x, &y| score(x).total_cmp(&score(y)).then(names[y].cmp(&names[x])))
                .expect("a positive weight")
        })
        .collect()
}

/// Effective weights for the least-connection family, from the number of
/// connections each server holds now (conntrack entries DNATed to it).
///
/// IPVS sends each new connection to the server with the fewest
/// connections per unit of weight (C / W). A map refreshed every few seconds
/// cannot choose per connection, so instead each server's share of the next
/// connections is `W × W / (W + C)`: idle servers get more, loaded ones
/// less, and when every server holds the same connections per unit of
/// weight the shares are the weights, so the counts stay in proportion to
/// the weights (as IPVS keeps them) rather than drifting. `weighted` false
/// treats every positive weight as 1 (`lc`: 1 / (1 + C)). Results are
/// scaled to at most 64; a positive weight keeps at least 1.
pub fn least_connection_weights(weights: &[u32], connections: &[u64], weighted: bool) -> Vec<u32> {
    scaled_shares(weights, connections, |w, c| w * w / (w + c), weighted)
}

/// Shares by IPVS's shortest-expected-delay metric `(C + 1) / W`: each
/// server's share is `W / ((C + 1) / W)`, so equal expected delays share by
/// weight. Scaled like [`least_connection_weights`].
pub fn shortest_delay_weights(weights: &[u32], connections: &[u64]) -> Vec<u32> {
    scaled_shares(weights, connections, |w, c| w * w / (c + 1.0), true)
}

fn scaled_shares(
    weights: &[u32],
    connections: &[u64],
    share: impl Fn(f64, f64) -> f64,
    weighted: bool,
) -> Vec<u32> {
    let shares: Vec<f64> = weights
        .iter()
        .zip(connections.iter().chain(std::iter::repeat(&0)))
        .map(|(&w, &c)| {
            let w = if weighted { w } else { u32::from(w > 0) };
            if w == 0 {
                0.0
            } else {
                share(f64::from(w), c as f64)
            }
        })
        .collect();
    let max = shares.iter().copied().fold(0.0, f64::max);
    if max <= 0.0 {
        return vec![0; weights.len()];
    }
    shares
        .iter()
        .map(|&s| {
            if s > 0.0 {
                ((s / max * 64.0).round() as u32).max(1)
            } else {
                0
            }
        })
        .collect()
}

/// The weights the next connections of a least-connection service are spread by (a
/// weighted round robin over them), from the configured `weights` and each server's
/// `loads`, following IPVS's choice for `scheduler`:
///
/// - lc: share ∝ 1 / (1 + overhead), overhead = 256 × active + inactive;
/// - wlc, lblc, lblcr: share ∝ W² / (W + overhead) ([`least_connection_weights`]);
/// - sed: share ∝ W² / (1 + active) ([`shortest_delay_weights`], IPVS's `(C + 1) / W`);
/// - nq: the idle servers (no active connection) share by weight, the others get none;
///   with no idle server, as sed.
///
/// With no connection anywhere the configured weights stand (lc: every positive weight
/// equal). A positive weight never becomes 0 except under nq's idle rule, so the pool
/// keeps its members. Other schedulers get `weights` unchanged.
pub fn effective_weights(
    scheduler: crate::Scheduler,
    weights: &[u32],
    loads: &[crate::Load],
) -> Vec<u32> {
    use crate::Scheduler::*;
    let load = |i: usize| loads.get(i).copied().unwrap_or_default();
    let plain = |weighted: bool| -> Vec<u32> {
        if weighted {
            weights.to_vec()
        } else {
            weights.iter().map(|&w| u32::from(w > 0)).collect()
        }
    };
    let idle = (0..weights.len()).all(|i| load(i) == crate::Load::default());
    match scheduler {
        LeastConnection
        | WeightedLeastConnection
        | LocalityLeastConnection
        | LocalityLeastConnectionReplicated => {
            let weighted = scheduler != LeastConnection;
            if idle {
                return plain(weighted);
            }
            let overhead: Vec<u64> = (0..weights.len()).map(|i| load(i).overhead()).collect();
            least_connection_weights(weights, &overhead, weighted)
        }
        ShortestExpectedDelay | NeverQueue => {
            let active: Vec<u64> = (0..weights.len()).map(|i| load(i).active).collect();
            if active.iter().all(|&c| c == 0) {
                return plain(true);
            }
            let has_idle = (0..weights.len()).any(|i| weights[i] > 0 && active[i] == 0);
            if scheduler == NeverQueue && has_idle {
                return (0..weights.len())
                    .map(|i| if active[i] == 0 { weights[i] } else { 0 })
                    .collect();
            }
            shortest_delay_weights(weights, &active)
        }
        _ => weights.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(cycle: &[usize], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        cycle.iter().for_each(|&i| c[i] += 1);
        c
    }

    #[test]
    fn wrr_cycle_follows_ipvs_interleaving() {
        // IPVS wrr with weights 4:3:2 picks a b a b c a b c a
        assert_eq!(wrr_cycle(&[4, 3, 2]), vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
        assert_eq!(counts(&wrr_cycle(&[1, 2, 3]), 3), vec![1, 2, 3]);
        assert_eq!(wrr_cycle(&[2, 4, 6]).len(), 6, "reduced by the gcd");
        assert_eq!(wrr_cycle(&[0, 5]), vec![1]);
        assert!(wrr_cycle(&[0, 0]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_to_the_slot_limit() {
        let cycle = wrr_cycle(&[65535, 30000, 1]);
        assert!(cycle.len() <= MAX_WRR_SLOTS as usize + 3, "{}", cycle.len());
        let c = counts(&cycle, 3);
        assert!(c[2] >= 1, "a positive weight keeps a slot");
        let ratio = c[0] as f64 / c[1] as f64;
        assert!((ratio - 65535.0 / 30000.0).abs() < 0.05, "{ratio}");
    }

    #[test]
    fn rr_and_failover_skip_quiesced_servers() {
        assert_eq!(rr_cycle(&[3, 0, 1]), vec![0, 2]);
        assert_eq!(failover_target(&[3, 7, 7]), vec![1]);
        assert!(failover_target(&[0]).is_empty());
    }

    #[test]
    fn hash_buckets_share_by_weight() {
        let b = hash_buckets(&[1, 3]);
        assert_eq!(b.len(), HASH_BUCKETS);
        assert_eq!(counts(&b, 2), vec![64, 192]);
        assert!(hash_buckets(&[0, 0]).is_empty());
    }

    fn names(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("10.0.1.{i}:80").into_bytes())
            .collect()
    }

    #[test]
    fn maglev_is_balanced_and_fills_every_slot() {
        let t = maglev_table(&names(5), &[1; 5], MAGLEV_TABLE_SIZE);
        assert_eq!(t.len(), MAGLEV_TABLE_SIZE);
        for c in counts(&t, 5) {
            assert!((c as f64 - 4093.0 / 5.0).abs() < 2.0, "{c}");
        }
        let t = maglev_table(&names(2), &[1, 3], MAGLEV_TABLE_SIZE);
        let c = counts(&t, 2);
        assert!((c[1] as f64 / c[0] as f64 - 3.0).abs() < 0.05, "{c:?}");
    }

    #[test]
    fn maglev_removal_moves_only_the_removed_servers_clients() {
        let all = names(5);
        let before = maglev_table(&all, &[1; 5], MAGLEV_TABLE_SIZE);
        // Server 2 leaves: list without it, indices shift above 2.
        let rest: Vec<Vec<u8>> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 2)
            .map(|(_, n)| n.clone())
            .collect();
        let after = maglev_table(&rest, &[1; 4], MAGLEV_TABLE_SIZE);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(&b, &a)| b != 2 && all[b] != rest[a])
            .count();
        // Clients of the surviving servers stay, except a few slots Maglev
        // rebalances (the paper's bound: a small fraction).
        assert!(moved < MAGLEV_TABLE_SIZE / 20, "{moved} slots moved");
        // With mod-N hashing, most clients would have moved.
        let modn_moved = (0..MAGLEV_TABLE_SIZE)
            .filter(|s| s % 5 != 2 && all[s % 5] != rest[s % 4])
            .count();
        assert!(modn_moved > MAGLEV_TABLE_SIZE / 2);
    }

    #[test]
    fn rendezvous_shares_by_weight_whatever_the_order() {
        let t = rendezvous_table(&names(3), &[1, 1, 2], PERSISTENCE_BUCKETS);
        let c = counts(&t, 3);
        let share = |i: usize| c[i] as f64 / PERSISTENCE_BUCKETS as f64;
        assert!((share(0) - 0.25).abs() < 0.03, "{c:?}");
        assert!((share(2) - 0.5).abs() < 0.03, "{c:?}");
        // The same servers listed in another order own the same buckets.
        let mut rev = names(3);
        rev.reverse();
        let r = rendezvous_table(&rev, &[2, 1, 1], PERSISTENCE_BUCKETS);
        assert!(t.iter().zip(&r).all(|(&a, &b)| a == 2 - b));
        assert!(rendezvous_table(&names(2), &[0, 0], 16).is_empty());
        assert!(!rendezvous_table(&names(2), &[0, 3], 64).contains(&0));
    }

    #[test]
    fn rendezvous_removal_moves_exactly_the_removed_servers_buckets() {
        let all = names(5);
        let before = rendezvous_table(&all, &[1, 2, 1, 3, 1], PERSISTENCE_BUCKETS);
        let rest: Vec<Vec<u8>> = [0, 1, 3, 4].iter().map(|&i| all[i].clone()).collect();
        let after = rendezvous_table(&rest, &[1, 2, 3, 1], PERSISTENCE_BUCKETS);
        for (b, (&was, &now)) in before.iter().zip(&after).enumerate() {
            if was != 2 {
                assert_eq!(all[was], rest[now], "bucket {b} moved");
            }
        }
        // Back again, it takes back exactly its own buckets.
        let back = rendezvous_table(&all, &[1, 2, 1, 3, 1], PERSISTENCE_BUCKETS);
        assert_eq!(before, back);
    }

    fn loads(active: &[u64]) -> Vec<crate::Load> {
        (active.iter())
            .map(|&active| crate::Load {
                active,
                inactive: 0,
            })
            .collect()
    }

    #[test]
    fn effective_weights_follow_ipvs_per_scheduler() {
        use crate::Scheduler::*;
        // Nobody holds a connection: the configured weights (lc: all equal).
        assert_eq!(effective_weights(LeastConnection, &[1, 3], &[]), [1, 1]);
        assert_eq!(
            effective_weights(WeightedLeastConnection, &[1, 3], &[]),
            [1, 3]
        );
        // lc: 20 active connections on the first server, the idle ones take nearly all.
        let w = effective_weights(LeastConnection, &[5, 1, 1], &loads(&[20, 0, 0]));
        assert_eq!(w, [1, 64, 64]);
        // An active connection weighs 256 inactive ones (IPVS's overhead).
        let mixed = [
            crate::Load {
                active: 1,
                inactive: 0,
            },
            crate::Load {
                active: 0,
                inactive: 100,
            },
        ];
        let w = effective_weights(LeastConnection, &[1, 1], &mixed);
        assert!(w[0] < w[1], "{w:?}");
        // wlc: equal load per weight, shares by weight.
        let w = effective_weights(WeightedLeastConnection, &[1, 2], &loads(&[10, 20]));
        assert!(
            (f64::from(w[1]) / f64::from(w[0]) - 2.0).abs() < 0.2,
            "{w:?}"
        );
        // sed: (C + 1) / W, so 3 connections on weight 4 equal 0 on weight 1: shares by
        // weight; 7 on weight 4 is twice the delay: only twice the share.
        let w = effective_weights(ShortestExpectedDelay, &[4, 1], &loads(&[3, 0]));
        assert_eq!(w, [64, 16]);
        let w = effective_weights(ShortestExpectedDelay, &[4, 1], &loads(&[7, 0]));
        assert_eq!(w, [64, 32]);
        // nq: an idle server takes everything while there is one.
        assert_eq!(
            effective_weights(NeverQueue, &[4, 1, 2], &loads(&[3, 0, 0])),
            [0, 1, 2]
        );
        let w = effective_weights(NeverQueue, &[4, 1], &loads(&[3, 1]));
        assert_eq!(
            w,
            effective_weights(ShortestExpectedDelay, &[4, 1], &loads(&[3, 1]))
        );
        // Other schedulers ignore loads.
        assert_eq!(
            effective_weights(WeightedRoundRobin, &[2, 3], &loads(&[9, 0])),
            [2, 3]
        );
    }

    #[test]
    fn least_connection_favours_idle_servers() {
        let w = least_connection_weights(&[1, 1, 1], &[0, 10, 100], false);
        assert!(w[0] > w[1] && w[1] >= w[2] && w[2] >= 1, "{w:?}");
        let w = least_connection_weights(&[3, 1], &[0, 0], true);
        assert_eq!(w, vec![64, 21]);
        assert_eq!(
            least_connection_weights(&[0, 2], &[0, 0], false),
            vec![0, 64]
        );
    }
}
