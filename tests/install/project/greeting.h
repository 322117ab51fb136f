// greeting.h — the `greeting` module's API, shared by the module and its host.
#ifndef EMBED_GREETING_H_
#define EMBED_GREETING_H_

#include <string>

struct GreetingApi {
  // Adds a <title> to this environment's head and returns the rendered head.
  std::string (*greet)(const char* name);
};

#endif  // EMBED_GREETING_H_
