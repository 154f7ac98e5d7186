//! A job's candidates for one pass, as the policies pop them.

/// Positions of a job's candidate nodes in the pass's order of its level, popped
/// from the end. When every node of the level is a candidate they are kept as a
/// count: a pass over a million nodes need not write each position down, when most
/// are never tried (see [`TryStart::JobIsFull`](super::TryStart::JobIsFull)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates(List);

#[derive(Debug, Clone, PartialEq, Eq)]
enum List {
    /// These positions.
    Listed(Vec<u32>),
    /// The positions below this one.
    Every(u32),
}

impl Candidates {
    /// Every position below `count`.
    pub fn every(count: u32) -> Self {
        Self(List::Every(count))
    }

    /// The positions listed, tried last first.
    pub fn listed(positions: Vec<u32>) -> Self {
        Self(List::Listed(positions))
    }

    /// Takes the next candidate to try.
    pub fn pop(&mut self) -> Option<u32> {
        match &mut self.0 {
            List::Listed(positions) => positions.pop(),
            List::Every(0) => None,
            List::Every(count) => {
                *count -= 1;
                Some(*count)
            }
        }
    }

    /// How many are left.
    pub fn len(&self) -> usize {
        match &self.0 {
            List::Listed(positions) => positions.len(),
            List::Every(count) => *count as usize,
        }
    }

    /// Is none left?
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops those left.
    pub fn clear(&mut self) {
        self.0 = List::Every(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_position_pops_as_the_list_of_them_does() {
        let (mut every, mut listed) = (Candidates::every(3), Candidates::listed(vec![0, 1, 2]));
        assert_eq!((every.len(), listed.len()), (3, 3));
        for _ in 0..4 {
            assert_eq!(every.pop(), listed.pop());
        }
        assert!(every.is_empty() && listed.is_empty());
        let mut some = Candidates::listed(vec![4, 7]);
        some.clear();
        assert_eq!((some.len(), some.pop()), (0, None));
    }
}
