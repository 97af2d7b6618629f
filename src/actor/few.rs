//! A list that is usually empty or holds one element (an actor's links and
//! monitors): one element lives inline, so the common actor, linked to its
//! one controller or watched by its one parent, allocates nothing for it.

/// Zero, one (inline) or many (on the heap) elements, in insertion order.
#[derive(Debug, Default)]
pub(crate) enum Few<T> {
    #[default]
    None,
    One(T),
    Many(Vec<T>),
}

impl<T: Copy + PartialEq> Few<T> {
    /// Appends `x`.
    pub(crate) fn push(&mut self, x: T) {
        match self {
            Few::None => *self = Few::One(x),
            Few::One(a) => *self = Few::Many(vec![*a, x]),
            Few::Many(v) => v.push(x),
        }
    }

    /// The elements, in insertion order.
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Few::None => &[],
            Few::One(a) => std::slice::from_ref(a),
            Few::Many(v) => v,
        }
    }

    /// True if `x` is an element.
    pub(crate) fn contains(&self, x: &T) -> bool {
        self.as_slice().contains(x)
    }

    /// Removes every element equal to `x`, keeping the others' order.
    pub(crate) fn remove_all(&mut self, x: &T) {
        match self {
            Few::None => {}
            Few::One(a) => {
                if a == x {
                    *self = Few::None;
                }
            }
            Few::Many(v) => {
                v.retain(|e| e != x);
                if v.is_empty() {
                    *self = Few::None;
                }
            }
        }
    }

    /// Removes the first element equal to `x`, if any; the last element
    /// takes its place. True if there was one.
    pub(crate) fn swap_remove_first(&mut self, x: &T) -> bool {
        match self {
            Few::None => false,
            Few::One(a) => {
                let found = a == x;
                if found {
                    *self = Few::None;
                }
                found
            }
            Few::Many(v) => match v.iter().position(|e| e == x) {
                Some(pos) => {
                    v.swap_remove(pos);
                    if v.is_empty() {
                        *self = Few::None;
                    }
                    true
                }
                None => false,
            },
        }
    }
}

impl<T> IntoIterator for Few<T> {
    type Item = T;
    type IntoIter = FewIter<T>;

    fn into_iter(self) -> FewIter<T> {
        match self {
            Few::None => FewIter::Vec(Vec::new().into_iter()),
            Few::One(a) => FewIter::One(Some(a)),
            Few::Many(v) => FewIter::Vec(v.into_iter()),
        }
    }
}

/// The elements of a [`Few`], by value.
#[derive(Debug)]
pub(crate) enum FewIter<T> {
    One(Option<T>),
    Vec(std::vec::IntoIter<T>),
}

impl<T> Iterator for FewIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            FewIter::One(a) => a.take(),
            FewIter::Vec(v) => v.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Few;

    #[test]
    fn keeps_order_and_goes_back_to_empty() {
        let mut f = Few::default();
        assert_eq!(f.as_slice(), &[] as &[u32]);
        f.push(1);
        assert!(matches!(f, Few::One(1)));
        f.push(2);
        f.push(3);
        f.push(2);
        assert_eq!(f.as_slice(), &[1, 2, 3, 2]);
        assert!(f.contains(&3) && !f.contains(&4));
        f.remove_all(&2);
        assert_eq!(f.as_slice(), &[1, 3]);
        f.swap_remove_first(&1);
        assert_eq!(f.as_slice(), &[3]);
        f.swap_remove_first(&3);
        assert!(matches!(f, Few::None));
        f.push(7);
        f.remove_all(&7);
        assert!(matches!(f, Few::None));
        f.push(8);
        f.push(9);
        assert_eq!(f.into_iter().collect::<Vec<_>>(), vec![8, 9]);
    }

    #[test]
    fn one_element_lives_inline() {
        assert_eq!(size_of::<Few<(u64, u64)>>(), size_of::<Vec<(u64, u64)>>());
    }
}
