// The executable of a suite library (run_suites.cc).
extern "C" int modgraph_run_context_suites(int argc, char** argv);

int main(int argc, char** argv) { return modgraph_run_context_suites(argc, argv); }
