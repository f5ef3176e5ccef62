/* libwidget.so.1: the C++ component of the `ddl check` fixture pairs.
 * -DVSLOT: size() and weight() are declared in the other order (their
 * vtable slots swap). -DCSIZE: Widget gets more data (16 -> 48 bytes). */
#ifndef WIDGET_H
#define WIDGET_H

class Widget {
public:
    explicit Widget(int id);
    virtual ~Widget();
#ifdef VSLOT
    virtual int weight() const;
    virtual int size() const;
#else
    virtual int size() const;
    virtual int weight() const;
#endif
    int id() const;

private:
    int id_;
#ifdef CSIZE
    long extra_[4];
#endif
};

#endif
