#include "app/app.h"

int main(int argc, char** argv) { return outbound::app::Main(argc, argv); }
