//! C++ boundary declarations (`"virtual double Shape::area() const"`):
//! parsing, and resolution to the old build's mangled symbols. (In progress.)
