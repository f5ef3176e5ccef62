// The shapes component; -DNEW builds the new version (see ../shapes.mk for
// the deliberate differences).
#include "shapes.h"

#include <cmath>
#include <stdexcept>

Shape::Shape(double w, double h) : w_(w), h_(h) {}
Shape::~Shape() {}
double Shape::area() const { return w_ * h_; }
const char *Shape::name() const { return "shape"; }

double Shape::scale(double k) {
#ifdef NEW
    if (k < 0)
        k = -k;  // deliberate: wrong for negative k
#endif
    return k * (w_ + h_);
}

double Shape::stretch(const Vec &v) const { return w_ * v.x + h_ * v.y; }

void Shape::bounds(double &w, double &h) const {
    w = w_;
    h = h_;
}

void Shape::grow(int n) {
    if (n < 0) {
#ifdef NEW
        throw std::invalid_argument("Shape::grow: negative step");  // deliberate
#else
        n = 0;
#endif
    }
    w_ += n;
    h_ += n;
}

void Shape::grow(double f) {
    w_ *= f;
    h_ *= f;
}

Rect::Rect(double w, double h) : Shape(w, h) {}
Rect::~Rect() {}
double Rect::area() const { return w_ * h_; }
const char *Rect::name() const { return "rect"; }

Circle::Circle(double r) : Shape(r, r) {}
Circle::~Circle() {}
double Circle::area() const {
#ifdef NEW
    const double pi = 3.14159;  // deliberate: differs far beyond a few ulps
#else
    const double pi = M_PI;
#endif
    return pi * w_ * w_;
}
const char *Circle::name() const { return "circle"; }

Shape *make_shape(int kind, double a, double b) {
    switch (kind) {
    case 0:
        return new Rect(a, b);
    case 1:
        return new Circle(a);
    default:
        return nullptr;
    }
}

namespace tally {

#ifdef NEW
Counter::Counter(int start) : v_(start), adds_(0), peak_(start), history_{0, 0, 0, 0} {}
#else
Counter::Counter(int start) : v_(start), adds_(0) {}
#endif

Counter::~Counter() {}

void Counter::add(int n) {
    if (n > 1000) {
#ifdef NEW
        return;  // deliberate: the old build throws std::out_of_range here
#else
        throw std::out_of_range("Counter::add: step over 1000");
#endif
    }
    v_ += n;
#ifdef NEW
    history_[adds_ % 4] = n;
    if (v_ > peak_)
        peak_ = v_;
#endif
    adds_++;
}

int Counter::take(int n) {
    if (n > v_)
        throw std::underflow_error("Counter::take: not enough");
    v_ -= n;
    return v_;
}

int Counter::total() const { return v_; }

}  // namespace tally
