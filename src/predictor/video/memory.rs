//! Which memories a frame attends to (`_prepare_memory_conditioned_features` and
//! `select_closest_cond_frames` of Meta's `sam2_base.py` / `sam2_utils.py`), and which stored
//! outputs a live stream can still reach. Pure index logic, tested on its own.

use crate::config::TrackingConfig;
use std::collections::BTreeMap;

/// The memory of one object for one frame: stored outputs to read and where they sit in time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemoryPlan {
    /// Spatial memories: (stored frame, temporal slot `t_pos`); slot 0 is a conditioning frame,
    /// `num_maskmem - k` the frame `k` steps back.
    pub frames: Vec<(usize, usize)>,
    /// Object pointers: (stored frame, temporal position fed to the sine encoding).
    pub ptrs: Vec<(usize, i64)>,
    /// The pointer distance that maps to 1 (`min(num_frames, max_obj_ptrs_in_encoder) - 1`).
    pub t_diff_max: usize,
}

/// `select_closest_cond_frames`: up to `max` conditioning frames, the closest before and after
/// `frame` first, then the temporally closest. Returns (selected, unselected), each sorted.
pub fn select_closest_cond_frames(frame: usize, cond: &[usize], max: Option<usize>) -> (Vec<usize>, Vec<usize>) {
    let max = match max {
        Some(m) if cond.len() > m => m,
        _ => return (cond.to_vec(), Vec::new()),
    };
    let mut selected = Vec::new();
    if let Some(&before) = cond.iter().filter(|&&t| t < frame).max() {
        selected.push(before);
    }
    if let Some(&after) = cond.iter().filter(|&&t| t >= frame).min() {
        selected.push(after);
    }
    let mut rest: Vec<usize> = cond.iter().copied().filter(|t| !selected.contains(t)).collect();
    // Stable sort by distance, as Python's `sorted(key=...)` over the dict's order.
    rest.sort_by_key(|&t| t.abs_diff(frame));
    let remain = max.saturating_sub(selected.len());
    selected.extend(rest.into_iter().take(remain));
    let unselected = cond.iter().copied().filter(|t| !selected.contains(t)).collect();
    selected.sort_unstable();
    (selected, unselected)
}

/// The memory of an object on a frame that is not its initial conditioning frame.
///
/// `cond` / `non_cond`: the object's stored outputs (only the keys are read); `num_frames`:
/// the video length, `None` for a live stream (unbounded).
pub fn plan_memory<T, U>(frame: usize, reverse: bool, cond: &BTreeMap<usize, T>, non_cond: &BTreeMap<usize, U>, cfg: &TrackingConfig, num_frames: Option<usize>) -> MemoryPlan {
    let cond_keys: Vec<usize> = cond.keys().copied().collect();
    let (selected, unselected) = select_closest_cond_frames(frame, &cond_keys, cfg.max_cond_frames_in_attn);
    let stored = |t: i64| -> Option<usize> {
        let t = usize::try_from(t).ok()?;
        (non_cond.contains_key(&t) || unselected.contains(&t)).then_some(t)
    };
    let f = frame as i64;
    let mut frames: Vec<(usize, usize)> = selected.iter().map(|&t| (t, 0)).collect();
    let stride = cfg.memory_temporal_stride_for_eval.max(1) as i64;
    for t_pos in 1..cfg.num_maskmem {
        let t_rel = (cfg.num_maskmem - t_pos) as i64;
        let prev = match (t_rel == 1, reverse) {
            (true, false) => f - 1,
            (true, true) => f + 1,
            (false, false) => (f - 2).div_euclid(stride) * stride - (t_rel - 2) * stride,
            (false, true) => -(-(f + 2)).div_euclid(stride) * stride + (t_rel - 2) * stride,
        };
        if let Some(t) = stored(prev) {
            frames.push((t, t_pos));
        }
    }
    let mut ptrs = Vec::new();
    let max_ptrs = num_frames.map_or(cfg.max_obj_ptrs_in_encoder, |n| n.min(cfg.max_obj_ptrs_in_encoder));
    if cfg.use_obj_ptrs_in_encoder {
        let sign = if reverse { -1 } else { 1 };
        for &t in &selected {
            let in_past = if reverse { t >= frame } else { t <= frame };
            if cfg.only_obj_ptrs_in_the_past_for_eval && !in_past {
                continue;
            }
            let d = f - t as i64;
            ptrs.push((t, if cfg.use_signed_tpos_enc_to_obj_ptrs { d * sign } else { d.abs() }));
        }
        for t_diff in 1..max_ptrs as i64 {
            let t = if reverse { f + t_diff } else { f - t_diff };
            if t < 0 || num_frames.is_some_and(|n| t >= n as i64) {
                break;
            }
            if let Some(t) = stored(t) {
                ptrs.push((t, t_diff));
            }
        }
    }
    MemoryPlan { frames, ptrs, t_diff_max: max_ptrs.saturating_sub(1) }
}

/// For a live stream tracked forwards whose next frame is `next`: the oldest non-conditioning
/// frame any later frame can still attend to (as a memory or an object pointer). Outputs
/// before it can be dropped.
pub fn oldest_reachable(next: usize, cfg: &TrackingConfig) -> usize {
    let stride = cfg.memory_temporal_stride_for_eval.max(1);
    // The farthest memory slot of frame `next` is ((next-2) div s)·s - (num_maskmem-3)·s ≥ next - num_maskmem·s.
    let memory_reach = cfg.num_maskmem * stride;
    let ptr_reach = if cfg.use_obj_ptrs_in_encoder { cfg.max_obj_ptrs_in_encoder } else { 0 };
    next.saturating_sub(memory_reach.max(ptr_reach))
}

/// For a live stream tracked forwards: the conditioning frames later frames can still select
/// (all of them without `max_cond_frames_in_attn`, else the most recent that many).
pub fn reachable_cond_frames(cond: &[usize], cfg: &TrackingConfig) -> Vec<usize> {
    let mut sorted = cond.to_vec();
    sorted.sort_unstable();
    match cfg.max_cond_frames_in_attn {
        Some(m) if sorted.len() > m => sorted.split_off(sorted.len() - m),
        _ => sorted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Sam2Version, VideoConfig};

    fn cfg() -> TrackingConfig {
        VideoConfig::official(Sam2Version::V2_1).tracking
    }

    fn map(keys: &[usize]) -> BTreeMap<usize, ()> {
        keys.iter().map(|&k| (k, ())).collect()
    }

    #[test]
    fn closest_cond_frames_before_after_then_nearest() {
        let cond = [0, 3, 10, 20, 40];
        assert_eq!(select_closest_cond_frames(12, &cond, None), (cond.to_vec(), vec![]));
        assert_eq!(select_closest_cond_frames(12, &cond, Some(5)), (cond.to_vec(), vec![]));
        // before 10, after 20, then 3 (distance 9) over 0 (12) and 40 (28).
        assert_eq!(select_closest_cond_frames(12, &cond, Some(3)), (vec![3, 10, 20], vec![0, 40]));
        // `after` includes the frame itself.
        assert_eq!(select_closest_cond_frames(20, &cond, Some(2)), (vec![10, 20], vec![0, 3, 40]));
        assert_eq!(select_closest_cond_frames(50, &cond, Some(2)), (vec![20, 40], vec![0, 3, 10]));
    }

    #[test]
    fn forward_plan_uses_six_previous_frames_and_pointers() {
        let c = cfg();
        let cond = map(&[0]);
        let non_cond = map(&(1..10).collect::<Vec<_>>());
        let plan = plan_memory(9, false, &cond, &non_cond, &c, Some(100));
        assert_eq!(plan.frames, vec![(0, 0), (3, 1), (4, 2), (5, 3), (6, 4), (7, 5), (8, 6)]);
        // cond frame 0 at distance 9, then frames 8..1 at distances 1..8.
        let expected: Vec<(usize, i64)> = std::iter::once((0, 9)).chain((1..9).map(|d| (9 - d, d as i64))).collect();
        assert_eq!(plan.ptrs, expected);
        assert_eq!(plan.t_diff_max, 15);
        // A 10-frame video caps the pointer window at 10 frames.
        assert_eq!(plan_memory(9, false, &cond, &non_cond, &c, Some(10)).t_diff_max, 9);
    }

    #[test]
    fn reverse_plan_looks_ahead_with_signed_distances() {
        let c = cfg();
        let cond = map(&[9]);
        let non_cond = map(&[6, 7, 8]);
        let plan = plan_memory(5, true, &cond, &non_cond, &c, Some(10));
        assert_eq!(plan.frames, vec![(9, 0), (8, 4), (7, 5), (6, 6)]);
        // signed: (5 - 9) * -1 = 4.
        assert_eq!(plan.ptrs, vec![(9, 4), (6, 1), (7, 2), (8, 3)]);
        // SAM 2.0 uses unsigned distances (the same here) and only past pointers.
        let mut c20 = VideoConfig::official(Sam2Version::V2_0).tracking;
        c20.max_obj_ptrs_in_encoder = 3;
        let plan = plan_memory(5, true, &cond, &non_cond, &c20, None);
        assert_eq!(plan.ptrs, vec![(9, 4), (6, 1), (7, 2)]);
    }

    #[test]
    fn future_cond_frames_give_memory_but_no_pointer() {
        let c = cfg();
        let plan = plan_memory(3, false, &map(&[0, 6]), &map(&[1, 2]), &c, Some(10));
        assert_eq!(plan.frames, vec![(0, 0), (6, 0), (1, 5), (2, 6)]);
        assert_eq!(plan.ptrs, vec![(0, 3), (2, 1), (1, 2)]);
    }

    #[test]
    fn unselected_cond_frames_serve_as_recent_memory() {
        let mut c = cfg();
        c.max_cond_frames_in_attn = Some(2);
        let plan = plan_memory(5, false, &map(&[0, 1, 4, 8]), &map(&[2, 3]), &c, None);
        // selected: 4 (before), 8 (after); 0 and 1 are unselected but still recent memories.
        assert_eq!(plan.frames, vec![(4, 0), (8, 0), (0, 2), (1, 3), (2, 4), (3, 5)]);
        assert!(plan.ptrs.contains(&(1, 4)) && plan.ptrs.contains(&(0, 5)));
    }

    #[test]
    fn temporal_stride_spaces_the_older_memories() {
        let mut c = cfg();
        c.memory_temporal_stride_for_eval = 2;
        c.use_obj_ptrs_in_encoder = false;
        let plan = plan_memory(20, false, &map(&[0]), &map(&(1..20).collect::<Vec<_>>()), &c, None);
        assert_eq!(plan.frames, vec![(0, 0), (10, 1), (12, 2), (14, 3), (16, 4), (18, 5), (19, 6)]);
        assert!(plan.ptrs.is_empty());
    }

    #[test]
    fn stream_retention_covers_every_reachable_frame() {
        let c = cfg();
        let next = 1000;
        let oldest = oldest_reachable(next, &c);
        let all = map(&(0..next).collect::<Vec<_>>());
        for frame in next..next + 50 {
            let plan = plan_memory(frame, false, &map(&[0]), &all, &c, None);
            let used = plan.frames.iter().map(|f| f.0).chain(plan.ptrs.iter().map(|p| p.0));
            assert!(used.filter(|&t| t != 0).all(|t| t >= oldest), "frame {frame}: {plan:?}");
        }
        assert_eq!(oldest, next - 16);
        let mut limited = c.clone();
        limited.max_cond_frames_in_attn = Some(2);
        assert_eq!(reachable_cond_frames(&[5, 1, 9], &limited), vec![5, 9]);
        assert_eq!(reachable_cond_frames(&[5, 1, 9], &c), vec![1, 5, 9]);
    }
}
