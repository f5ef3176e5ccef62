/* 80 small functions: rev_f0 … rev_f79, rev_fN(x) = x + N. */
#define F(n) int rev_f##n(int x) { return x + n; }
#define T(d) F(d##0) F(d##1) F(d##2) F(d##3) F(d##4) F(d##5) F(d##6) F(d##7) F(d##8) F(d##9)
F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9)
T(1) T(2) T(3) T(4) T(5) T(6) T(7)
