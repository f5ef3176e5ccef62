// libwidget.so.1, see widget.h.
#include "widget.h"

Widget::Widget(int id) : id_(id) {}
Widget::~Widget() {}
int Widget::size() const { return id_ * 2; }
int Widget::weight() const { return id_ + 100; }
int Widget::id() const { return id_; }
