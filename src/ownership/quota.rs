//! The fair share of one member: pure arithmetic, so every member computes
//! the same split from the same view of the group.

use uuid::Uuid;

/// How many of `slots` `me` may hold, given every live member and how many
/// slots each holds now. `slots mod N` members may hold one more than the
/// rest; those are the members holding the most already (ties by id), so a
/// change of membership moves as few slots as it can. A member missing from
/// `members` (not yet counted) gets nothing.
pub fn fair_share(members: &[(Uuid, i64)], slots: i64, me: Uuid) -> i64 {
    let n = i64::try_from(members.len()).unwrap_or(i64::MAX);
    if n == 0 || slots <= 0 {
        return 0;
    }
    let mut ranked: Vec<&(Uuid, i64)> = members.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let Some(rank) = ranked.iter().position(|m| m.0 == me) else {
        return 0;
    };
    let rank = i64::try_from(rank).unwrap_or(i64::MAX);
    slots / n + i64::from(rank < slots % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    fn shares(members: &[(Uuid, i64)], slots: i64) -> Vec<i64> {
        members
            .iter()
            .map(|m| fair_share(members, slots, m.0))
            .collect()
    }

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for n in 1..=7u128 {
            for slots in 0..=20 {
                let members: Vec<_> = ids(n).into_iter().map(|id| (id, 0)).collect();
                let shares = shares(&members, slots);
                assert_eq!(shares.iter().sum::<i64>(), slots, "n={n} slots={slots}");
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.zip(min).is_some_and(|(a, b)| a - b <= 1));
            }
        }
    }

    #[test]
    fn a_joining_member_takes_only_what_must_move() {
        let id = ids(4);
        // Three members hold 2 each of 6; a fourth joins with none.
        let members = [(id[0], 2), (id[1], 2), (id[2], 2), (id[3], 0)];
        let shares = shares(&members, 6);
        // Two of the holders keep 2, one gives up 1, the new one takes 1.
        assert_eq!(shares, vec![2, 2, 1, 1]);
    }

    #[test]
    fn the_larger_shares_go_to_the_members_holding_most() {
        let id = ids(2);
        // 5 slots, the second member holds 3: it keeps them.
        let members = [(id[0], 2), (id[1], 3)];
        assert_eq!(shares(&members, 5), vec![2, 3]);
    }

    #[test]
    fn a_member_not_counted_gets_nothing() {
        let id = ids(2);
        assert_eq!(fair_share(&[(id[0], 0)], 6, id[1]), 0);
        assert_eq!(fair_share(&[(id[0], 0)], 6, id[0]), 6);
    }
}
