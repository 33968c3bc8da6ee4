import Router from '@koa/router';
import type { TaskService } from '../task-service';
import { readJsonBody } from '../body';
import { responseView, taskView } from '../views';

/** `POST /<task_type>` creates a task; `GET /<task_type>/<identifier>` reads it with its responses. */
export function tasksRouter(service: TaskService, bodyLimit: number): Router {
  const router = new Router();
  router.post('/:type', async (ctx) => {
    const body = await readJsonBody(ctx, bodyLimit);
    const { task, created } = await service.create(ctx.params.type, body);
    ctx.status = created ? 201 : 200;
    ctx.body = taskView(task);
  });
  router.get('/:type/:identifier', async (ctx) => {
    const { task, responses } = await service.get(ctx.params.type, ctx.params.identifier);
    ctx.body = { task: taskView(task), taskResponseList: responses.map(responseView) };
  });
  return router;
}
