# --- shapes: the C++ fixture pair (issue 3, "C++ classes") -----------------
#
# shapes/shapes.h, shapes/shapes.cc (old; new with -DNEW), soname
# libshapes.so.1, g++ only. Builds:
#   $(OUT)/shapes/{old,new}/libshapes.so.1
#   $(OUT)/shapes/apps/shapes-app-{pie-lazy,pie-now,noplt,nopie}
#   $(OUT)/shapes/include/shapes.h
# Config: shapes.ddl.json beside this file.
#
# Deliberate differences of the new build:
#   * Circle::area uses pi = 3.14159 (the old build M_PI): every call differs
#     (relative error 8.4e-7, about 4e9 ulps).
#   * Shape::scale(double k) uses |k|: wrong for negative k.
#   * Shape::grow(int n) throws std::invalid_argument("Shape::grow: negative
#     step") for n < 0 (the old build clamps n to 0): a shadow_fault with
#     the exception's type and what(). The object is not changed either way.
#   * tally::Counter::add(int n) with n > 1000: the OLD build throws
#     std::out_of_range("Counter::add: step over 1000") to the application
#     (which catches it); the new build returns normally and changes nothing.
#   * tally::Counter::take(int n) with n > total(): BOTH builds throw
#     std::underflow_error("Counter::take: not enough") (the app catches it).
#   * tally::Counter is 8 bytes in the old build and 48 in the new one
#     (DWARF: DW_AT_byte_size of tally::Counter in each build's debug info).
#     Shape/Rect/Circle are 24 bytes in both.
#
# shapes-app (every layout) makes these boundary calls, keyed by the
# declarations of shapes.ddl.json; "calls" = mirrored (sampling 1.0), and
# every other count not named is 0:
#   Rect::Rect(double w, double h)                2 (stack r: C1; new Rect: C1)       match 2
#   Circle::Circle(double r)                      2 (stack c, new Circle: C1)         match 2
#   Shape *make_shape(int kind, double a, double b) 3 (Rect, Circle, nullptr)         match 3
#   virtual double Rect::area() const             4 (2 direct on r, 2 vtable)         match 4
#   virtual double Circle::area() const           4 (2 direct on c, 2 vtable)         mismatch 4
#   virtual const char *Rect::name() const        3 (1 direct, 2 vtable)              match 3
#   virtual const char *Circle::name() const      3 (1 direct, 2 vtable)              match 3
#   double Shape::scale(double k)                 6 (k = 2, -2, and 3 on 4 shapes)    match 5, mismatch 1 (k = -2)
#   void Shape::grow(int n)                       3 (n = 1, -3 on r, -1 on fc)        match 1, shadow_fault 2
#   void Shape::grow(double f)                    2                                   match 2
#   void Shape::bounds(double &w, double &h) const 1                                  match 1
#   double Shape::stretch(const Vec &v) const     1                                   match 1
#   virtual Rect::~Rect()                         3 (D1 for r; D0 for 2 deletes)      match 3
#   virtual Circle::~Circle()                     3 (D1 for c; D0 for 2 deletes)      match 3
#   virtual Shape::~Shape()                       0 (only the library's own D2 calls)
#   virtual double Shape::area() const            0
#   virtual const char *Shape::name() const       0
#   tally::Counter::Counter(int start)            1 (C1, on the app's stack)          match 1
#   void tally::Counter::add(int n)               3 (5, 5000, 7)                      match 2, mismatch 1 (5000: old threw out_of_range, new did not)
#   int tally::Counter::take(int n)               2 (2, 100)                          match 2 (100: both threw underflow_error, same what())
#   int tally::Counter::total() const             2                                   match 2
#   tally::Counter::~Counter()                    1 (D1)                              match 1
# Calls the library makes to itself (Rect::Rect -> Shape::Shape C2, D0 ->
# D1, make_shape -> the constructors) are not boundary calls and not
# counted. The objects make_shape returns are created inside the library.
# Output of the app under DDL must equal its output without DDL (old build).
# Run on the new build (LD_LIBRARY_PATH=$(OUT)/shapes/new) the app prints
# different c.area / shape[1,3] area / r.scale(-2) lines, "grow(-3) threw" and
# "grow(-1) threw" lines, and "k.add(5000) ok".

SHAPES := $(OUT)/shapes
SHAPES_CXX := g++
SHAPES_CXXFLAGS := -O2 -g -Wall -Wextra -Werror -std=c++17
SHAPES_LIBS := $(SHAPES)/old/libshapes.so.1 $(SHAPES)/new/libshapes.so.1
SHAPES_APPS := $(foreach l,$(LAYOUTS),$(SHAPES)/apps/shapes-app-$(l))

all: $(SHAPES_LIBS) $(SHAPES_APPS) $(SHAPES)/include/shapes.h

.PHONY: clean-shapes
clean: clean-shapes
clean-shapes:
	rm -rf $(SHAPES)

$(SHAPES)/old/libshapes.so.1: shapes/shapes.cc shapes/shapes.h shapes.mk
	@mkdir -p $(@D)
	$(SHAPES_CXX) $(SHAPES_CXXFLAGS) $(LIBFLAGS) -Wl,-soname,libshapes.so.1 -o $@ $<
$(SHAPES)/new/libshapes.so.1: shapes/shapes.cc shapes/shapes.h shapes.mk
	@mkdir -p $(@D)
	$(SHAPES_CXX) $(SHAPES_CXXFLAGS) -DNEW $(LIBFLAGS) -Wl,-soname,libshapes.so.1 -o $@ $<

$(SHAPES)/include/shapes.h: shapes/shapes.h
	@mkdir -p $(@D)
	cp $< $@

# Linked against the OLD build, found through RUNPATH.
$(SHAPES)/apps/shapes-app-%: shapes/shapes-app.cc shapes/shapes.h $(SHAPES)/old/libshapes.so.1 shapes.mk
	@mkdir -p $(@D)
	$(SHAPES_CXX) $(SHAPES_CXXFLAGS) $(LAYOUT_$*) -Ishapes -o $@ $< $(SHAPES)/old/libshapes.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(SHAPES)/old
# --- end of shapes ---
