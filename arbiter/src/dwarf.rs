//! Reading a build's DWARF: class sizes and, later, prototypes. (In progress.)
