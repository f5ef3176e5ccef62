// shapes: the C++ fixture component (old build; the new build is the same
// source compiled with -DNEW). A small class hierarchy with virtual methods,
// a factory, overloads, a value class used on the stack (direct calls), and
// exceptions both ways. The deliberate differences are listed in ../shapes.mk.
#ifndef SHAPES_H
#define SHAPES_H

struct Vec {
    double x;
    double y;
};

// The base: a bounding box w x h. Concrete (area and name have defaults) so
// that every one of its methods is exported.
class Shape {
public:
    Shape(double w, double h);
    virtual ~Shape();
    virtual double area() const;
    virtual const char *name() const;
    // k * (w + h); the new build is wrong for negative k (uses |k|).
    double scale(double k);
    // w * v.x + h * v.y
    double stretch(const Vec &v) const;
    // writes w and h
    void bounds(double &w, double &h) const;
    // w += n, h += n; old clamps a negative n to 0, new throws std::invalid_argument.
    void grow(int n);
    // w *= f, h *= f
    void grow(double f);

protected:
    double w_;
    double h_;
};

class Rect : public Shape {
public:
    Rect(double w, double h);
    ~Rect() override;
    double area() const override;
    const char *name() const override;
};

class Circle : public Shape {
public:
    explicit Circle(double r);
    ~Circle() override;
    // pi r^2; the new build uses pi = 3.14159.
    double area() const override;
    const char *name() const override;
};

// kind 0: new Rect(a, b); kind 1: new Circle(a); else nullptr. C++ linkage
// (_Z10make_shapeidd).
extern "C++" Shape *make_shape(int kind, double a, double b);

namespace tally {

// A value class, used on the application's stack: its calls are direct.
// The new build's object is bigger (48 bytes against 8).
class Counter {
public:
    explicit Counter(int start);
    ~Counter();
    // old: throws std::out_of_range for n > 1000; new: ignores such an n.
    void add(int n);
    // both: throw std::underflow_error when n > total(); else subtract, return the total.
    int take(int n);
    int total() const;

private:
    int v_;
    int adds_;
#ifdef NEW
    int peak_;
    long history_[4];
#endif
};

}  // namespace tally

#endif
