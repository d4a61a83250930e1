//! Connection keys: the 5-tuple, canonicalised so both directions meet.
//!
//! Like Zeek's default conn key, VLAN tags are not part of the key unless
//! asked for (`--vlan-key`, Zeek's `vlan_fivetuple`). ICMP messages without a
//! counterpart type ("one-way": unreachable, time exceeded, ...) keep their
//! direction, as Zeek does not canonicalise them.

use std::hash::{Hash, Hasher};

use crate::decode::Addr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    /// The lower endpoint (or the sender, for a directional key).
    pub a: Addr,
    pub b: Addr,
    pub a_port: u16,
    pub b_port: u16,
    pub ip_proto: u8,
    pub directional: bool,
    pub vlan: Option<u16>,
    pub inner_vlan: Option<u16>,
}

/// Hashed as six machine words rather than field by field: the table
/// hashes a key for every packet.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let words = |a: &Addr| {
            let (hi, lo) = a.0.split_at(8);
            [
                u64::from_ne_bytes(hi.try_into().unwrap_or_default()),
                u64::from_ne_bytes(lo.try_into().unwrap_or_default()),
            ]
        };
        let vlan = |v: Option<u16>| v.map_or(0, |v| 0x1_0000 | u64::from(v));
        let [a0, a1] = words(&self.a);
        let [b0, b1] = words(&self.b);
        h.write_u64(a0);
        h.write_u64(a1);
        h.write_u64(b0);
        h.write_u64(b1);
        h.write_u64(
            u64::from(self.a_port)
                | u64::from(self.b_port) << 16
                | u64::from(self.ip_proto) << 32
                | u64::from(self.directional) << 40,
        );
        h.write_u64(vlan(self.vlan) | vlan(self.inner_vlan) << 32);
    }
}

impl FlowKey {
    /// Build the key for a packet from `src:sport` to `dst:dport`; returns
    /// the key and whether the sender is endpoint `a`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        src: Addr,
        sport: u16,
        dst: Addr,
        dport: u16,
        ip_proto: u8,
        directional: bool,
        vlan: Option<u16>,
        inner_vlan: Option<u16>,
    ) -> (FlowKey, bool) {
        let src_first = directional || (src, sport) <= (dst, dport);
        let (a, a_port, b, b_port) = if src_first {
            (src, sport, dst, dport)
        } else {
            (dst, dport, src, sport)
        };
        (
            FlowKey {
                a,
                b,
                a_port,
                b_port,
                ip_proto,
                directional,
                vlan,
                inner_vlan,
            },
            src_first,
        )
    }

    /// A hash that is the same for both directions (the key is canonical):
    /// it picks a shard, indexes the flow table and goes into the uid.
    pub fn shard_hash(&self) -> u64 {
        let mut h = rustc_hash::FxHasher::default();
        self.hash(&mut h);
        h.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_give_one_key() {
        let x = Addr::v4([10, 0, 0, 1]);
        let y = Addr::v4([10, 0, 0, 2]);
        let (k1, first1) = FlowKey::new(x, 40000, y, 80, 6, false, None, None);
        let (k2, first2) = FlowKey::new(y, 80, x, 40000, 6, false, None, None);
        assert_eq!(k1, k2);
        assert_ne!(first1, first2);
        assert_eq!(k1.shard_hash(), k2.shard_hash());
    }

    #[test]
    fn directional_keys_keep_order() {
        let x = Addr::v4([10, 0, 0, 9]);
        let y = Addr::v4([10, 0, 0, 2]);
        let (k1, first) = FlowKey::new(x, 3, y, 1, 1, true, None, None);
        let (k2, _) = FlowKey::new(y, 3, x, 1, 1, true, None, None);
        assert!(first);
        assert_ne!(k1, k2);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn addr() -> impl Strategy<Value = Addr> {
            prop_oneof![
                any::<[u8; 4]>().prop_map(Addr::v4),
                any::<[u8; 16]>().prop_map(Addr),
            ]
        }

        proptest! {
            #[test]
            fn both_directions_share_a_key_and_a_shard(
                x in addr(), y in addr(), xp: u16, yp: u16, proto: u8,
                vlan: Option<u16>, inner: Option<u16>, shards in 1usize..9,
            ) {
                let (k1, first1) = FlowKey::new(x, xp, y, yp, proto, false, vlan, inner);
                let (k2, first2) = FlowKey::new(y, yp, x, xp, proto, false, vlan, inner);
                prop_assert_eq!(k1, k2);
                prop_assert_eq!(k1.shard_hash(), k2.shard_hash());
                prop_assert!(first1 != first2 || (x, xp) == (y, yp));
                let h = k1.shard_hash();
                prop_assert!(((u128::from(h) * shards as u128) >> 64) < shards as u128);
            }
        }
    }
}
