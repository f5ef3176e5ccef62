// shapes-app: uses libshapes by stack objects, new, the factory, virtual
// calls through base pointers (vtables) and direct calls on a value class.
// Prints everything it computes (%.17g); linked against the old build. The
// calls it makes, and the verdicts DDL must give them, are listed in
// ../shapes.mk. Run on the new build (LD_LIBRARY_PATH=.../new) it prints
// the new build's answers, and the exceptions only the new build throws.
#include <cstdio>
#include <stdexcept>

#include "shapes.h"

static void show(const char *what, double v) { std::printf("%s %.17g\n", what, v); }

// Virtual calls through a base pointer (name, area: vtable slots), and one
// non-virtual call.
__attribute__((noinline)) static void describe(int i, Shape *s) {
    std::printf("shape[%d] name %s\n", i, s->name());
    std::printf("shape[%d] area %.17g\n", i, s->area());
    std::printf("shape[%d] scale(3) %.17g\n", i, s->scale(3.0));
}

// grow(int) in a try: only the new build throws.
static void grow_by(const char *tag, Shape &s, int n) {
    try {
        s.grow(n);
        std::printf("%s grow(%d) ok\n", tag, n);
    } catch (const std::exception &e) {
        std::printf("%s grow(%d) threw: %s\n", tag, n, e.what());
    }
}

// The counter on the stack, with room behind it: run directly on the new
// build (whose Counter is 48 bytes), the app must not overwrite its stack.
struct Holder {
    tally::Counter k;
    char room[64];
    Holder() : k(10), room{} {}
};

int main() {
    {
        Rect r(3.0, 4.0);
        Circle c(1.5);
        show("r.area", r.area());
        show("c.area", c.area());
        std::printf("r.name %s\n", r.name());
        std::printf("c.name %s\n", c.name());
        show("r.scale(2)", r.scale(2.0));
        show("r.scale(-2)", r.scale(-2.0));
        grow_by("r", r, 1);
        grow_by("r", r, -3);
        r.grow(0.5);
        c.grow(2.0);
        double w = 0, h = 0;
        r.bounds(w, h);
        show("r.w", w);
        show("r.h", h);
        Vec v = {2.0, 0.5};
        show("r.stretch", r.stretch(v));
        show("r.area", r.area());
        show("c.area", c.area());

        Shape *hr = new Rect(2.0, 5.0);
        Shape *hc = new Circle(0.5);
        Shape *fr = make_shape(0, 1.0, 7.0);
        Shape *fc = make_shape(1, 2.0, 0.0);
        Shape *fn = make_shape(9, 0.0, 0.0);
        std::printf("make_shape(9) %s\n", fn ? "object" : "null");
        Shape *all[] = {hr, hc, fr, fc};
        for (int i = 0; i < 4; i++)
            describe(i, all[i]);
        grow_by("fc", *fc, -1);
        for (Shape *s : all)
            delete s;
    }
    {
        Holder hold;
        tally::Counter &k = hold.k;
        k.add(5);
        try {
            k.add(5000);
            std::printf("k.add(5000) ok\n");
        } catch (const std::exception &e) {
            std::printf("k.add(5000) threw: %s\n", e.what());
        }
        k.add(7);
        std::printf("k.total %d\n", k.total());
        std::printf("k.take(2) %d\n", k.take(2));
        try {
            std::printf("k.take(100) %d\n", k.take(100));
        } catch (const std::exception &e) {
            std::printf("k.take(100) threw: %s\n", e.what());
        }
        std::printf("k.total %d\n", k.total());
    }
    return 0;
}
