//! When keys change state: a pure decision from the stored keys, the
//! policy's delays and the time, unit-tested without a database.
//! [`super::KeyManager::maintain`] carries the decision out.

use crate::configuration::Settings;
use crate::domain::{KeyId, KeyRecord, KeySetName, KeyState};

/// The timings that make rotation safe, derived from the settings.
#[derive(Debug, Clone, Copy)]
pub struct KeyPolicy {
    /// A `next` key may sign this long after it was published:
    /// JWKS max-age + publication margin.
    pub publication_delay: i64,
    /// A `previous` key stays published this long after it stopped
    /// signing: the longest token lifetime + leeway.
    pub retire_delay: i64,
    /// Rotate a set's current key after this long; `None`: only by hand.
    pub rotation_period: Option<i64>,
}

impl KeyPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self {
            publication_delay: secs(settings.jwks_max_age_secs)
                .saturating_add(secs(settings.keys.publication_margin_secs)),
            retire_delay: i64::from(settings.token.max_ttl_secs)
                .saturating_add(secs(settings.keys.retire_leeway_secs)),
            rotation_period: (settings.keys.rotation_period_secs > 0)
                .then(|| secs(settings.keys.rotation_period_secs)),
        }
    }

    /// When `next` may start signing; `None` for an HS256 secret that was
    /// never exported (no resource server can know it yet). Times are stored
    /// in whole seconds, rounded down: one second more makes sure that the
    /// real delay is never shorter than the policy's.
    pub fn safe_at(&self, next: &KeyRecord) -> Option<i64> {
        let published = match next.set {
            KeySetName::Hs256(_) => next.exported_at?,
            KeySetName::Asymmetric(_) => next.published_at,
        };
        Some(
            published
                .saturating_add(self.publication_delay)
                .saturating_add(1),
        )
    }

    /// Whether `next` may sign at `now`.
    pub fn is_safe(&self, next: &KeyRecord, now: i64) -> bool {
        self.safe_at(next).is_some_and(|at| at <= now)
    }
}

/// A key transition that is due; [`plan`] decides, [`KeyManager::maintain`]
/// carries it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Every token this `previous` key signed has expired.
    Retire { kid: KeyId, set: KeySetName },
    /// The set's `next` key becomes `current`.
    Promote { set: KeySetName, next: KeyId },
    /// The set rotates on a period but has no `next` key to rotate to.
    PublishNext { set: KeySetName },
}

/// The transitions due at `now` among `keys` (one snapshot of every
/// unretired key): expired `previous` keys retire; a `next` key that is
/// safe to sign with is promoted when its promotion was scheduled, when its
/// set has no `current` key yet, or when the current key's rotation period
/// is over; and with a rotation period, an asymmetric set without a `next`
/// key gets one. HS256 sets never get one on their own: a new secret is of
/// no use until someone hands it to the resource server.
pub fn plan(keys: &[KeyRecord], policy: &KeyPolicy, now: i64) -> Vec<Transition> {
    let mut due: Vec<Transition> = keys
        .iter()
        .filter(|k| k.state == KeyState::Previous && k.retire_after.is_some_and(|t| t <= now))
        .map(|k| Transition::Retire {
            kid: k.kid.clone(),
            set: k.set.clone(),
        })
        .collect();
    let mut sets: Vec<&KeySetName> = keys.iter().map(|k| &k.set).collect();
    sets.sort_unstable_by_key(|set| set.to_string());
    sets.dedup();
    for set in sets {
        let in_set = |state| keys.iter().find(|k| &k.set == set && k.state == state);
        let current = in_set(KeyState::Current);
        match in_set(KeyState::Next) {
            Some(next) if policy.is_safe(next, now) => {
                let scheduled = next.promote_at.is_some_and(|at| at <= now);
                let period_over = match (current, policy.rotation_period) {
                    (Some(current), Some(period)) => current
                        .activated_at
                        .is_some_and(|at| at.saturating_add(period) <= now),
                    _ => false,
                };
                if scheduled || current.is_none() || period_over {
                    due.push(Transition::Promote {
                        set: set.clone(),
                        next: next.kid.clone(),
                    });
                }
            }
            Some(_) => {}
            None if current.is_some()
                && policy.rotation_period.is_some()
                && !set.alg().is_symmetric() =>
            {
                due.push(Transition::PublishNext { set: set.clone() });
            }
            None => {}
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Algorithm;
    use crate::domain::Audience;

    const NOW: i64 = 1_000_000;

    fn policy(rotation_period: Option<i64>) -> KeyPolicy {
        KeyPolicy {
            publication_delay: 100,
            retire_delay: 1000,
            rotation_period,
        }
    }

    fn rs256() -> KeySetName {
        KeySetName::Asymmetric(Algorithm::RS256)
    }

    fn hs256() -> KeySetName {
        KeySetName::Hs256(Audience::parse("https://orders.example").unwrap())
    }

    fn key(kid: &str, set: &KeySetName, state: KeyState) -> KeyRecord {
        KeyRecord {
            kid: KeyId::parse(kid).unwrap(),
            set: set.clone(),
            alg: set.alg(),
            state,
            sealed_private_key: Some(vec![0; 8]),
            master_key_id: "m".to_owned(),
            public_jwk: None,
            created_at: 0,
            published_at: 0,
            activated_at: (state == KeyState::Current).then_some(0),
            retire_after: None,
            promote_at: None,
            exported_at: None,
        }
    }

    /// A `next` key published `age` seconds ago: with `policy`, safe from
    /// 101 s on (the delay, plus one second for whole-second times).
    fn next(kid: &str, set: &KeySetName, age: i64) -> KeyRecord {
        let mut next = key(kid, set, KeyState::Next);
        next.published_at = NOW - age;
        next
    }

    fn promote(set: &KeySetName, kid: &str) -> Transition {
        Transition::Promote {
            set: set.clone(),
            next: KeyId::parse(kid).unwrap(),
        }
    }

    #[test]
    fn a_previous_key_retires_once_its_tokens_expired_and_not_before() {
        let mut previous = key("p", &rs256(), KeyState::Previous);
        previous.retire_after = Some(NOW);
        let keys = [key("c", &rs256(), KeyState::Current), previous.clone()];
        assert_eq!(
            plan(&keys, &policy(None), NOW),
            [Transition::Retire {
                kid: previous.kid.clone(),
                set: rs256()
            }]
        );
        assert_eq!(plan(&keys, &policy(None), NOW - 1), []);
    }

    #[test]
    fn a_scheduled_promotion_happens_when_due_and_safe() {
        let mut scheduled = next("n", &rs256(), 101);
        scheduled.promote_at = Some(NOW);
        let keys = [key("c", &rs256(), KeyState::Current), scheduled];
        assert_eq!(plan(&keys, &policy(None), NOW), [promote(&rs256(), "n")]);
        assert_eq!(plan(&keys, &policy(None), NOW - 1), []);
    }

    #[test]
    fn an_unscheduled_next_key_waits_while_the_current_one_signs() {
        let keys = [
            key("c", &rs256(), KeyState::Current),
            next("n", &rs256(), 10_000),
        ];
        assert_eq!(plan(&keys, &policy(None), NOW), []);
    }

    #[test]
    fn the_first_key_of_a_new_set_is_promoted_once_safe() {
        let es256 = KeySetName::Asymmetric(Algorithm::ES256);
        let keys = [
            key("c", &rs256(), KeyState::Current),
            next("n", &es256, 101),
        ];
        assert_eq!(plan(&keys, &policy(None), NOW), [promote(&es256, "n")]);
        let young = [next("n", &es256, 100)];
        assert_eq!(plan(&young, &policy(None), NOW), []);
    }

    #[test]
    fn a_rotation_period_rotates_only_to_a_safe_next_key() {
        let mut current = key("c", &rs256(), KeyState::Current);
        current.activated_at = Some(NOW - 500);
        let safe = [current.clone(), next("n", &rs256(), 101)];
        assert_eq!(
            plan(&safe, &policy(Some(500)), NOW),
            [promote(&rs256(), "n")]
        );
        assert_eq!(plan(&safe, &policy(Some(501)), NOW), []);
        let unsafe_next = [current, next("n", &rs256(), 100)];
        assert_eq!(plan(&unsafe_next, &policy(Some(500)), NOW), []);
    }

    #[test]
    fn a_rotation_period_publishes_a_next_key_for_asymmetric_sets_only() {
        let keys = [
            key("c", &rs256(), KeyState::Current),
            key("h", &hs256(), KeyState::Current),
        ];
        assert_eq!(
            plan(&keys, &policy(Some(500)), NOW),
            [Transition::PublishNext { set: rs256() }]
        );
        assert_eq!(plan(&keys, &policy(None), NOW), []);
    }

    #[test]
    fn nothing_is_promoted_before_it_is_safe() {
        // Scheduled, first of its set and past the period, but published
        // too recently.
        let mut current = key("c", &rs256(), KeyState::Current);
        current.activated_at = Some(0);
        let mut young = next("n", &rs256(), 100);
        young.promote_at = Some(NOW - 1);
        assert_eq!(plan(&[current, young], &policy(Some(1)), NOW), []);
        // An HS256 secret never exported is never safe, however old.
        let hs = [next("h", &hs256(), 10_000)];
        assert_eq!(plan(&hs, &policy(None), NOW), []);
        let mut exported = next("h", &hs256(), 10_000);
        exported.exported_at = Some(NOW - 101);
        assert_eq!(
            plan(&[exported], &policy(None), NOW),
            [promote(&hs256(), "h")]
        );
    }

    #[test]
    fn retirements_come_first_then_sets_in_name_order() {
        let es256 = KeySetName::Asymmetric(Algorithm::ES256);
        let mut previous = key("p", &rs256(), KeyState::Previous);
        previous.retire_after = Some(0);
        let keys = [next("r", &rs256(), 101), next("e", &es256, 101), previous];
        assert_eq!(
            plan(&keys, &policy(None), NOW),
            [
                Transition::Retire {
                    kid: KeyId::parse("p").unwrap(),
                    set: rs256()
                },
                promote(&es256, "e"),
                promote(&rs256(), "r"),
            ]
        );
    }
}
