//! The numbers of the PKCS#11 interface as types: object and session handles, slot ids,
//! attribute, mechanism, class and key types. `ffi/` turns the C ABI's `CK_ULONG`s into
//! these once, when it decodes a call, and back when it encodes the answer, so no layer
//! below it casts one kind of number into another.
//!
//! Each type holds a `u64`, the width the store's encodings fix. This module must not
//! know what any value means; the typed constants are in `ck` and `vendor`, and so is the
//! `Debug` of the four constant kinds, which prints their names.

use std::fmt;

use cryptoki_sys::CK_ULONG;

macro_rules! number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The value in its fixed stored width.
            pub const fn new(value: u64) -> Self {
                $name(value)
            }

            /// The value in its fixed stored width.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The value as the C ABI sent it.
            pub const fn from_raw(value: CK_ULONG) -> Self {
                // Widening: CK_ULONG is at most 64 bits on every target.
                $name(value as u64)
            }

            /// The value as the C ABI expects it.
            pub const fn raw(self) -> CK_ULONG {
                // Lossless where CK_ULONG is 64 bits (the LP64 targets kmshsm is built
                // for, where this cast is the identity).
                self.0 as CK_ULONG
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

number! {
    /// An object's handle, unique in the process and never reused.
    ObjectHandle
}
number! {
    /// A session's handle.
    SessionHandle
}
number! {
    /// A slot's id.
    SlotId
}
number! {
    /// An attribute type (`CKA_*`).
    AttrType
}
number! {
    /// A mechanism type (`CKM_*`).
    MechType
}
number! {
    /// An object class (`CKO_*`).
    ObjectClass
}
number! {
    /// A key type (`CKK_*`).
    KeyType
}

macro_rules! debug_as_number {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    )*};
}

debug_as_number!(ObjectHandle, SessionHandle, SlotId);
